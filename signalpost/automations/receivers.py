"""Receivers that enroll people and let them leave, in the sender's transaction.

Enrolling only writes rows (an enrollment per person, a run task per signal),
so it happens in the transaction of the subscribe, tag or import that caused
it: a rollback enrolls nobody, and no task per person is needed to do it. The
steps run later, set-based, in ``tasks.automations_run``.
"""

from django.db.backends.signals import connection_created
from django.db.models.signals import post_save
from django.dispatch import receiver

from signalpost.automations import clock
from signalpost.automations.dates import sqlite_functions_register
from signalpost.automations.models import Automation, Enrollment
from signalpost.automations.services import (
    automation_welcome_create,
    date_reached_soon,
    enroll_on_profile_change,
    enroll_subscribed,
    enrollments_exit,
    enrollments_exit_tagged,
    run_soon,
    subscribed_automations,
)
from signalpost.automations.writes import enrollments_enroll_later
from signalpost.conf import conf
from signalpost.durable.maintenance import chore_due
from signalpost.durable.signals import worker_beat
from signalpost.newsletters.models import Newsletter, Subscription
from signalpost.signals import (
    bounce_received,
    complaint_received,
    profile_attributes_changed,
    profile_tagged,
    subscribers_imported,
    user_subscribed,
    user_unsubscribed,
)

# How often the workers look for dates reached: a date trigger starts within a minute.
DATE_SCAN_SECONDS = 60


@receiver(post_save, sender=Newsletter, dispatch_uid="automations.welcome_for_new_newsletter")
def welcome_for_new_newsletter(sender, *, instance, created, raw=False, **kwargs):
    """A new newsletter gets its welcome email as an automation (``automation_welcome_create``)."""
    if created and not raw:
        automation_welcome_create(newsletter=instance)


@receiver(user_subscribed, dispatch_uid="automations.enroll_subscribed")
def enroll_on_subscribe(sender, *, profile, newsletter, subscription, **kwargs):
    """A subscription became active: into the newsletter's subscribe automations.

    In a worker's batch of sign-ups (``rows.rows_deferred``) everyone who subscribed
    to the same newsletter from the same source is enrolled together at the batch's
    end, in its transaction: the same enrollments, a few statements per batch instead
    of per person.
    """
    source = subscription.source

    def enroll_together(profile_ids):
        enroll_subscribed(newsletter=newsletter, profile_ids=profile_ids, source=source)

    key = ("automations.enroll_subscribed", newsletter.pk, source)
    if not enrollments_enroll_later(key=key, profile_id=profile.pk, enroll=enroll_together):
        enroll_together([profile.pk])


@receiver(subscribers_imported, dispatch_uid="automations.enroll_imported")
def enroll_on_import(sender, *, newsletter, subscription_ids, source, **kwargs):
    """An imported batch of active subscriptions: enrolled in one statement per automation
    (nothing is read when no automation of the newsletter takes imported people)."""
    if not subscribed_automations(newsletter=newsletter, source=Subscription.Source.IMPORT):
        return
    profile_ids = list(
        Subscription.objects.filter(
            pk__in=subscription_ids, status=Subscription.Status.ACTIVE
        ).values_list("profile_id", flat=True)
    )
    if profile_ids:
        enroll_subscribed(
            newsletter=newsletter, profile_ids=profile_ids, source=Subscription.Source.IMPORT
        )


@receiver(profile_tagged, dispatch_uid="automations.enroll_or_exit_tagged")
def enroll_or_exit_on_tag(sender, *, tag, profile_ids, **kwargs):
    """A tag put on people ends the automations it is the exit tag of, and starts those
    it triggers."""
    enrollments_exit_tagged(tag=tag, profile_ids=list(profile_ids))
    enroll_on_profile_change(
        trigger=Automation.Trigger.TAGGED, values=[tag], profile_ids=list(profile_ids)
    )


@receiver(profile_attributes_changed, dispatch_uid="automations.enroll_attribute_changed")
def enroll_on_attribute_change(sender, *, profile, changed, **kwargs):
    """Attributes changed: into the automations their keys trigger (one look-up for all)."""
    enroll_on_profile_change(
        trigger=Automation.Trigger.ATTRIBUTE_CHANGED, values=list(changed), profile_ids=[profile.pk]
    )


@receiver(user_unsubscribed, dispatch_uid="automations.exit_unsubscribed")
def exit_on_unsubscribe(sender, *, profile, newsletter, **kwargs):
    """No further step for someone who left: from the commit on (an email in flight
    stops with its delivery, ``publishing.receivers.deliveries_skip``)."""
    enrollments_exit(profile_ids=[profile.pk], reason="unsubscribed", newsletter_id=newsletter.pk)


@receiver(bounce_received, dispatch_uid="automations.exit_bounced")
@receiver(complaint_received, dispatch_uid="automations.exit_complained")
def exit_on_bounce(sender, *, profile, subscription, signal, **kwargs):
    """An address that bounced (for good) or complained leaves the newsletter's automations."""
    if profile is None:
        return
    if signal is bounce_received and kwargs.get("bounce_type") != "hard":
        return
    reason = "bounced" if signal is bounce_received else "complained"
    newsletter_id = subscription.newsletter_id if subscription is not None else None
    enrollments_exit(profile_ids=[profile.pk], reason=reason, newsletter_id=newsletter_id)


@receiver(connection_created, dispatch_uid="automations.sqlite_date_due")
def sqlite_date_due_register(sender, *, connection, **kwargs):
    """SQLite connections get ``signalpost_date_due``, the date trigger's rule
    (``dates.DateDue``); PostgreSQL has it as an expression."""
    sqlite_functions_register(connection)


@receiver(worker_beat, dispatch_uid="automations.date_reached")
def automations_date_reached(sender, *, worker_id, **kwargs):
    """Dates reached since: queue the task that enrolls those people (one query per
    ``date_reached`` automation, by one worker of them all, about every
    ``DATE_SCAN_SECONDS``; the beat stays quick however many they are)."""
    if chore_due("automations_date_reached", every=DATE_SCAN_SECONDS):
        date_reached_soon()


@receiver(worker_beat, dispatch_uid="automations.wake")
def automations_wake(sender, *, worker_id, **kwargs):
    """Waits that ended since: queue a run when anything is due (one worker of them all,
    about every beat, with a shared cache)."""
    if not chore_due("automations_wake", every=conf.WORKER_LEASE_SECONDS / 4):
        return
    due = Enrollment.objects.filter(
        status=Enrollment.Status.ACTIVE,
        next_run_at__lte=clock.now(),
        automation__status=Automation.Status.ACTIVE,
    )
    if due.exists():
        run_soon()
