"""Subscribing and unsubscribing: the only places a subscription changes state.

Each function runs in one transaction and sends its catalogue signal inside
it, so the receivers' writes (profile, activity, queued emails) commit or roll
back together with the subscription.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from signalpost.accounts.models import Profile
from signalpost.accounts.selectors import profile_by_email
from signalpost.accounts.services import (
    CONTROL_CHARACTERS,
    email_normalize,
    name_clean,
    profile_attributes_update,
    profile_get_or_create,
    profile_update,
    profile_user_attach,
    user_email,
)
from signalpost.accounts.users import user_verified_email
from signalpost.accounts.writes import profiles_insert_new
from signalpost.conf import conf
from signalpost.durability import commit_without_flush
from signalpost.newsletters.endings import subscription_ended_save
from signalpost.newsletters.imports import UPLOAD_MAX_BYTES, ImportFileError, data_lines_count
from signalpost.newsletters.mailtemplates import template_check
from signalpost.newsletters.models import (
    EmailTemplate,
    EmailTemplateVersion,
    Newsletter,
    Segment,
    SubscriberImport,
    Subscription,
    Suppression,
)
from signalpost.newsletters.segments import segment_rules_check
from signalpost.newsletters.suppressions import (
    address_is_suppressed,
    email_hash,
    suppressed_among,
    suppression_lift,
    suppressions_add,
)
from signalpost.newsletters.writes import (
    receiver_rows_held_back,
    subscription_insert,
    subscriptions_insert,
)
from signalpost.signals import (
    bounce_received,
    complaint_received,
    preferences_link_requested,
    subscription_requested,
    user_subscribed,
)

Status = Subscription.Status
Source = Subscription.Source

USER_AGENT_MAX_LENGTH = 500

# Statuses a person leaves by asking again (form, API, admin). An import never
# brings these back: a list someone uploads must not override their choice.
ENDED_STATUSES = {Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED}


@dataclass(frozen=True)
class ConsentEvidence:
    """What proves a person asked to subscribe: when, from where, with what."""

    at: datetime
    ip: str | None = None
    user_agent: str = ""


@transaction.atomic
def subscribe(
    *,
    email: str,
    newsletter: Newsletter,
    source: str,
    name: str = "",
    consent: ConsentEvidence | None = None,
    address_verified: bool = False,
) -> Subscription:
    """Subscribe ``email`` to ``newsletter`` and return the ``Subscription``.

    Single opt-in newsletters (except from a form embedded on another website,
    ``source="embed"``, which always confirms), staff adding someone by hand and a
    person who proved they own the address (``address_verified``, as through a
    signed preference-center link) activate at once and send ``user_subscribed``,
    unless the address is on the suppression list for ``newsletter``: then it
    always goes through double opt-in (an import leaves it alone), and only the
    person's confirmation lifts the suppression.
    Otherwise the subscription is pending and ``subscription_requested`` is
    sent, at most once per confirmation window however often the address is
    submitted. Subscribing an active address changes nothing and sends
    nothing, so concurrent identical requests produce one subscription and
    one signal.

    Raises ``django.core.exceptions.ValidationError`` for an invalid address.
    """
    source = Source(source)
    profile, profile_created = profile_get_or_create(email=email, name=name)
    if profile_created:
        # Nobody else can see a profile this transaction just created, so its
        # subscription is inserted once, in its final state, further down.
        subscription = Subscription(profile=profile, newsletter=newsletter, source=source)
    else:
        # The row lock serialises concurrent requests for the same pair: each
        # one sees the state the previous one committed.
        subscription, _ = Subscription.objects.select_for_update().get_or_create(
            profile=profile, newsletter=newsletter, defaults={"source": source}
        )
    if subscription.status == Status.ACTIVE:
        return subscription
    if subscription.status in ENDED_STATUSES and source == Source.IMPORT:
        return subscription
    # A suppressed address comes back only by confirming a new double opt-in itself: never
    # through an import, and never at once, whatever the newsletter's policy or the source.
    suppressed = address_is_suppressed(email=profile.email, newsletter=newsletter)
    if suppressed and source == Source.IMPORT:
        return subscription
    # A form on another website always confirms by email: whoever runs that site
    # could submit any address, and the person never saw this site's form.
    single_opt_in = newsletter.opt_in == Newsletter.OptIn.SINGLE and source != Source.EMBED
    activate = not suppressed and (single_opt_in or source == Source.ADMIN or address_verified)
    now = timezone.now()
    if not activate and _confirmation_requested_recently(subscription, now=now):
        return subscription

    _subscription_request_apply(
        subscription, source=source, consent=consent, activate=activate, now=now
    )
    if not activate and conf.SUBSCRIBE_ASYNC_COMMIT:
        # Nobody has consented yet: a request a database crash loses is one
        # confirmation email that never comes, and the person asks again.
        commit_without_flush()
    if profile_created:
        subscription_insert(subscription=subscription)
    else:
        subscription.save()
    _subscription_signal_send(subscription, profile=profile, newsletter=newsletter)
    return subscription


def _subscription_request_apply(
    subscription: Subscription,
    *,
    source: Subscription.Source,
    consent: ConsentEvidence | None,
    activate: bool,
    now: datetime,
) -> None:
    """Set ``subscription``'s source, consent evidence and new state (active at once, or
    pending confirmation) as a sign-up asks; nothing is saved."""
    subscription.source = source
    if consent is not None:
        subscription.consent_at = consent.at
        subscription.consent_ip = consent.ip
        subscription.consent_user_agent = consent.user_agent[:USER_AGENT_MAX_LENGTH]
    if activate:
        subscription.status = Status.ACTIVE
        subscription.subscribed_at = now
    else:
        subscription.status = Status.PENDING
        subscription.requested_at = now


def _subscription_signal_send(
    subscription: Subscription, *, profile: Profile, newsletter: Newsletter
) -> None:
    """Send ``user_subscribed`` for a subscription a sign-up made active, else
    ``subscription_requested``."""
    signal = user_subscribed if subscription.status == Status.ACTIVE else subscription_requested
    signal.send(
        sender=Subscription,
        profile=profile,
        newsletter=newsletter,
        subscription=subscription,
        user_email=profile.email,
        source=Source(subscription.source).value,
    )


@dataclass(frozen=True)
class SignupRequest:
    """One sign-up as a public form's task carries it: what ``subscribe`` is called with."""

    email: str
    newsletter: Newsletter
    name: str
    source: str
    consent: ConsentEvidence | None = None


@transaction.atomic
def subscribe_new_addresses(*, requests: Sequence[SignupRequest]) -> list[int]:
    """Subscribe each of ``requests`` whose address has no profile yet, as ``subscribe``
    would, all in this one transaction; return the indexes of the requests it handled.

    The others are left to the caller, who runs ``subscribe`` for each after this
    commits: an address that is known (its subscriptions' states and the confirmation
    window apply), invalid, or asked for again further on in the batch, and an import.
    For a new address none of that applies, so the batch takes one INSERT for the
    profiles, one suppression query per newsletter, one INSERT for the subscriptions,
    and the signals are sent per person with ``subscribe``'s arguments, in this
    transaction; the rows their receivers queue (activity, confirmation emails) are
    written at the end, one INSERT per table (``writes.receiver_rows_held_back``). Any error rolls
    the whole batch back: the caller then runs every request alone, each failing alone.
    """
    chosen: dict[str, tuple[int, SignupRequest]] = {}
    for index, request in enumerate(requests):
        try:
            email = email_normalize(request.email)
            source = Source(request.source)
        except (ValidationError, ValueError):
            continue  # subscribe() says what is wrong with it
        if source != Source.IMPORT:
            chosen.setdefault(email, (index, request))
    profiles = profiles_insert_new(
        profiles=[Profile(email=email, name=name_clean(r.name)) for email, (_, r) in chosen.items()]
    )
    if not profiles:
        return []
    now = timezone.now()
    suppressed = _suppressed_pairs(
        [(profile, chosen[profile.email][1].newsletter) for profile in profiles]
    )
    subscriptions = []
    for profile in profiles:
        request = chosen[profile.email][1]
        source, newsletter = Source(request.source), request.newsletter
        single_opt_in = newsletter.opt_in == Newsletter.OptIn.SINGLE and source != Source.EMBED
        subscription = Subscription(profile=profile, newsletter=newsletter, source=source)
        activate = (profile.email, newsletter.pk) not in suppressed and (
            single_opt_in or source == Source.ADMIN
        )
        _subscription_request_apply(
            subscription, source=source, consent=request.consent, activate=activate, now=now
        )
        subscriptions.append(subscription)
    if conf.SUBSCRIBE_ASYNC_COMMIT and any(s.status == Status.PENDING for s in subscriptions):
        commit_without_flush()  # as in subscribe()
    with receiver_rows_held_back():
        for subscription in subscriptions_insert(subscriptions=subscriptions):
            _subscription_signal_send(
                subscription, profile=subscription.profile, newsletter=subscription.newsletter
            )
    return sorted(chosen[profile.email][0] for profile in profiles)


def _suppressed_pairs(pairs: list[tuple[Profile, Newsletter]]) -> set[tuple[str, int]]:
    """Which ``(address, newsletter id)`` of ``pairs`` are suppressed: one query per newsletter."""
    by_newsletter: dict[Newsletter, dict[str, str]] = {}
    for profile, newsletter in pairs:
        by_newsletter.setdefault(newsletter, {})[email_hash(profile.email)] = profile.email
    suppressed = set()
    for newsletter, emails in by_newsletter.items():
        for found in suppressed_among(hashes=list(emails), newsletter=newsletter):
            suppressed.add((emails[found], newsletter.pk))
    return suppressed


@transaction.atomic
def user_subscribe(
    *, user: Any, newsletter: Newsletter, consent: ConsentEvidence | None = None
) -> Subscription:
    """Subscribe a signed-in ``user`` of the site to ``newsletter`` and return the subscription.

    With the address the site verified for them (``SIGNALPOST_VERIFIED_EMAIL``) it is
    active at once: no confirmation email, ``user_subscribed`` is sent. Otherwise their
    account's own address follows the newsletter's opt-in like any form (double opt-in:
    pending, ``subscription_requested``, a confirmation email). Either way through
    ``subscribe``, and the address's profile becomes ``user.profile`` if neither has one.

    Raises ``ValidationError`` (code ``no_address``) for a user without an address.
    """
    verified = user_verified_email(user)
    email = verified or user_email(user)
    if email is None:
        raise ValidationError(
            _("Your account has no email address to send newsletters to."), code="no_address"
        )
    subscription = subscribe(
        email=email,
        newsletter=newsletter,
        source=Source.FORM,
        consent=consent,
        address_verified=verified is not None,
    )
    profile_user_attach(profile=subscription.profile, user=user)
    return subscription


@transaction.atomic
def user_unsubscribe(*, user: Any, newsletter: Newsletter) -> Subscription | None:
    """End signed-in ``user``'s subscription to ``newsletter`` (see ``subscription_end``);
    ``None`` when they had none. Only ever their own profile's."""
    profile = Profile.objects.filter(user=user).first() if user.is_authenticated else None
    if profile is None:
        return None
    return subscription_end(profile=profile, newsletter=newsletter, reason="account page")


def _confirmation_requested_recently(subscription: Subscription, *, now: datetime) -> bool:
    """Return whether ``subscription`` asked for confirmation within the window.

    Whatever its status now: otherwise subscribing, unsubscribing through the form
    and subscribing again would send a confirmation email each round. Someone who
    left by mistake can come back at once through the preference center.
    """
    window = timedelta(seconds=conf.CONFIRMATION_WINDOW_SECONDS)
    return subscription.requested_at is not None and subscription.requested_at > now - window


@transaction.atomic
def subscription_confirm(*, subscription: Subscription) -> Subscription:
    """Activate a pending ``subscription`` (double opt-in confirmed); return it.

    Confirming twice is harmless: only the first activation sends
    ``user_subscribed``. A subscription that ended meanwhile stays ended. The
    confirmation is the person's new double opt-in: it lifts any suppression of
    the address for this newsletter (``suppressions.suppression_lift``).
    """
    subscription = (
        Subscription.objects.select_for_update()
        .select_related("profile", "newsletter")
        .get(pk=subscription.pk)
    )
    if subscription.status != Status.PENDING:
        return subscription
    subscription.status = Status.ACTIVE
    subscription.subscribed_at = timezone.now()
    subscription.save(update_fields=["status", "subscribed_at"])
    suppression_lift(subscription=subscription)
    user_subscribed.send(
        sender=Subscription,
        profile=subscription.profile,
        newsletter=subscription.newsletter,
        subscription=subscription,
        user_email=subscription.profile.email,
        source=subscription.source,
    )
    return subscription


@transaction.atomic
def subscription_confirmation_resend(*, subscription: Subscription) -> bool:
    """Ask a pending ``subscription`` to confirm again: send ``subscription_requested``.

    For staff, who decide for themselves; the confirmation window that limits the
    public form does not apply, but ``requested_at`` moves so the form's limit
    counts from now. Returns ``False`` (and sends nothing) unless it is pending.
    """
    subscription = (
        Subscription.objects.select_for_update()
        .select_related("profile", "newsletter")
        .get(pk=subscription.pk)
    )
    if subscription.status != Status.PENDING:
        return False
    subscription.requested_at = timezone.now()
    subscription.save(update_fields=["requested_at"])
    subscription_requested.send(
        sender=Subscription,
        profile=subscription.profile,
        newsletter=subscription.newsletter,
        subscription=subscription,
        user_email=subscription.profile.email,
        source=subscription.source,
    )
    return True


@transaction.atomic
def unsubscribe(*, email: str, newsletter: Newsletter, reason: str) -> Subscription | None:
    """End ``email``'s pending or active subscription to ``newsletter``.

    Returns the ended ``Subscription``, or ``None`` when there was nothing to
    end (unknown address, never subscribed, already ended): callers answer the
    same either way, so the response reveals nothing about who is subscribed.
    """
    profile = profile_by_email(email=email)
    if profile is None:
        return None
    return subscription_end(profile=profile, newsletter=newsletter, reason=reason)


@transaction.atomic
def subscription_end(
    *, profile: Profile, newsletter: Newsletter, reason: str
) -> Subscription | None:
    """End ``profile``'s pending or active subscription to ``newsletter``; see ``unsubscribe``."""
    subscription = (
        Subscription.objects.select_for_update()
        .filter(profile=profile, newsletter=newsletter, status__in=[Status.PENDING, Status.ACTIVE])
        .first()
    )
    if subscription is None:
        return None
    # The profile and newsletter the caller holds: no query to read them again.
    subscription.profile, subscription.newsletter = profile, newsletter
    subscription_ended_save(
        subscription=subscription,
        status=Status.UNSUBSCRIBED,
        timestamp_field="unsubscribed_at",
        reason=reason,
        now=timezone.now(),
    )
    return subscription


@transaction.atomic
def preferences_update(
    *,
    profile: Profile,
    name: str,
    wanted_newsletters: Iterable[Newsletter],
    consent: ConsentEvidence | None,
    attributes: dict[str, Any] | None = None,
) -> tuple[list[Newsletter], list[Newsletter]]:
    """Apply a preference-center form: ``profile``'s name, the attributes its newsletters
    let people edit (``attributes``, ``None`` clearing a key) and exactly these
    subscriptions.

    Newsletters in ``wanted_newsletters`` are joined at once (the signed link
    proved the address); every other pending or active subscription ends.
    Returns ``(joined, left)``, lists of newsletters.
    """
    profile_update(profile=profile, name=name)
    if attributes:
        profile_attributes_update(profile=profile, values=attributes, source="preferences")
    current_status = dict(
        Subscription.objects.filter(
            profile=profile, status__in=[Status.PENDING, Status.ACTIVE]
        ).values_list("newsletter", "status")
    )
    wanted_ids = {newsletter.pk for newsletter in wanted_newsletters}
    joined = []
    for newsletter in wanted_newsletters:
        if current_status.get(newsletter.pk) != Status.ACTIVE:
            subscribe(
                email=profile.email,
                newsletter=newsletter,
                source=Source.FORM,
                consent=consent,
                address_verified=True,
            )
            joined.append(newsletter)
    left = [
        newsletter
        for newsletter in Newsletter.objects.filter(pk__in=set(current_status) - wanted_ids)
        if subscription_end(profile=profile, newsletter=newsletter, reason="preference center")
    ]
    return joined, left


@transaction.atomic
def preferences_link_request(*, email: str) -> bool:
    """Email the preference-center link to ``email`` if it has a profile; return whether.

    Not to an address suppressed for every newsletter (it bounced or complained): the
    subscribe form's confirmation is its way back. Callers answer the same either way.
    """
    profile = profile_by_email(email=email)
    if profile is None or address_is_suppressed(email=profile.email, newsletter=None):
        return False
    preferences_link_requested.send(sender=Newsletter, profile=profile, user_email=profile.email)
    return True


@transaction.atomic
def bounce_record(*, email: str, permanent: bool, description: str = "") -> list[Subscription]:
    """Record a bounce for ``email``; return the subscriptions it ended.

    A permanent (hard) bounce ends every pending or active subscription of the
    address at once. A soft one (mailbox full, server unavailable: a bounce
    after the mail was given up on, never a mere deferral, which callers do
    not report) is noted; it ends them when ``SIGNALPOST_SOFT_BOUNCE_LIMIT``
    soft bounces fall within ``SIGNALPOST_SOFT_BOUNCE_WINDOW_DAYS`` with no
    mail delivered in between (``_soft_bounces_counting``), and suppresses it as
    a hard one does. Each ended
    subscription sends ``bounce_received``.
    """
    profile = profile_by_email(email=email)
    if profile is None:
        return []
    profile = type(profile).objects.select_for_update().get(pk=profile.pk)
    if not permanent:
        now = timezone.now()
        counting = [*_soft_bounces_counting(profile=profile, now=now), now]
        counting = counting[-max(conf.SOFT_BOUNCE_LIMIT, 1) :]
        profile.soft_bounces = [moment.isoformat() for moment in counting]
        profile.soft_bounce_count = len(counting)
        profile.save(update_fields=["soft_bounces", "soft_bounce_count", "updated_at"])
        if profile.soft_bounce_count < conf.SOFT_BOUNCE_LIMIT:
            return []
    ended = _subscriptions_end_for_delivery_problem(
        profile=profile, status=Status.BOUNCED, timestamp_field="bounced_at"
    )
    suppressions_add(
        entries=[(profile.email, Suppression.Reason.BOUNCED, None)],
        newsletter=None,
        source="bounce",
    )
    for subscription in ended:
        bounce_received.send(
            sender=Subscription,
            profile=profile,
            subscription=subscription,
            user_email=profile.email,
            bounce_type="hard" if permanent else "soft",
            description=description[:500],
        )
    return ended


def _soft_bounces_counting(*, profile: Profile, now: datetime) -> list[datetime]:
    """The profile's earlier soft bounces that still count at ``now``, oldest first.

    Those older than the window drop out. All drop out if mail got through
    since the last one: a delivery sent after it that has gone
    ``SIGNALPOST_DELIVERY_SETTLED_DAYS`` without a bounce. (A bounce report
    arrives after the message was handed over, so a delivery sent a moment ago
    proves nothing yet.)
    """
    window_start = now - timedelta(days=conf.SOFT_BOUNCE_WINDOW_DAYS)
    moments = []
    for text in profile.soft_bounces or []:
        try:
            moment = datetime.fromisoformat(text)
        except (TypeError, ValueError):
            continue
        if moment >= window_start:
            moments.append(moment)
    moments.sort()
    if not moments:
        return []
    settled_before = now - timedelta(days=conf.DELIVERY_SETTLED_DAYS)
    delivered = profile.deliveries.filter(
        status="sent", sent_at__gt=moments[-1], sent_at__lte=settled_before
    ).exists()
    return [] if delivered else moments


@transaction.atomic
def soft_bounces_forget(*, email: str) -> bool:
    """Mail to ``email`` was delivered (a provider says so): its soft bounces stop counting.

    Returns whether there were any. One indexed read when there are none.
    """
    profile = profile_by_email(email=email)
    if profile is None or not profile.soft_bounce_count:
        return False
    updated = (
        type(profile)
        .objects.filter(pk=profile.pk)
        .update(soft_bounce_count=0, soft_bounces=None, updated_at=timezone.now())
    )
    return bool(updated)


@transaction.atomic
def complaint_record(*, email: str, description: str = "") -> list[Subscription]:
    """Record a spam complaint for ``email``: every live subscription ends and the address
    goes on the suppression list for every newsletter; return the ended subscriptions."""
    profile = profile_by_email(email=email)
    if profile is None:
        return []
    ended = _subscriptions_end_for_delivery_problem(
        profile=profile, status=Status.COMPLAINED, timestamp_field="complained_at"
    )
    suppressions_add(
        entries=[(profile.email, Suppression.Reason.COMPLAINED, None)],
        newsletter=None,
        source="complaint",
    )
    for subscription in ended:
        complaint_received.send(
            sender=Subscription,
            profile=profile,
            subscription=subscription,
            user_email=profile.email,
            description=description[:500],
        )
    return ended


def _subscriptions_end_for_delivery_problem(
    *, profile: Profile, status: str, timestamp_field: str
) -> list[Subscription]:
    now = timezone.now()
    subscriptions = list(
        Subscription.objects.select_for_update()
        .select_related("newsletter")
        .filter(profile=profile, status__in=[Status.PENDING, Status.ACTIVE])
    )
    for subscription in subscriptions:
        subscription.status = status
        setattr(subscription, timestamp_field, now)
        subscription.save(update_fields=["status", timestamp_field])
    return subscriptions


@transaction.atomic
def subscriber_import_start(
    *, newsletter: Newsletter, upload: Any, confirm: bool, user: Any, format_name: str = ""
) -> SubscriberImport:
    """Store ``upload`` (an uploaded CSV file) and queue its import into ``newsletter``;
    return the ``SubscriberImport``, which the worker updates as it goes
    (``imports.subscriber_import_run``).

    Raises ``ImportFileError`` for an empty file or one over ``UPLOAD_MAX_BYTES``; the
    rows themselves are checked by the import. The task is queued in this transaction:
    a file stored is a file imported.
    """
    from signalpost.newsletters.tasks import subscriber_import_queue

    if not upload.size:
        raise ImportFileError("the file is empty")
    if upload.size > UPLOAD_MAX_BYTES:
        raise ImportFileError(
            f"the file is {upload.size:,} bytes; at most {UPLOAD_MAX_BYTES:,} here "
            "(use manage.py import_subscribers for bigger files)"
        )
    name = "".join(c for c in (upload.name or "") if c.isprintable()).rsplit("/", 1)[-1][:200]
    name = name or "import.csv"
    job = SubscriberImport(
        newsletter=newsletter,
        file_name=name,
        confirm=confirm,
        format=format_name or "",
        created_by=user,
        lines=data_lines_count(upload),
    )
    job.file.save("upload.csv", upload, save=False)
    job.save()
    subscriber_import_queue(subscriber_import=job)
    return job


@transaction.atomic
def email_template_save(
    *, newsletter: Newsletter | None, name: str, body: str, user: Any, note: str = ""
) -> EmailTemplate:
    """Make ``body`` the active template ``name`` of ``newsletter`` (``None``: of every
    newsletter without its own) and record it as a version by ``user``; return it.

    Raises ``ValidationError`` (nothing is written) when ``body`` fails
    ``mailtemplates.template_check``: a syntax error, a refused tag, no render with a
    sample recipient, or mail about a newsletter without the unsubscribe link.
    """
    template_check(name=name, body=body, newsletter=newsletter)
    template = (
        # No ordering: the model's (by newsletter name) would outer-join the newsletter,
        # which PostgreSQL cannot lock FOR UPDATE.
        EmailTemplate.objects.select_for_update(of=("self",))
        .filter(newsletter=newsletter, name=name)
        .order_by("pk")
        .first()
    )
    if template is None:
        template = EmailTemplate(newsletter=newsletter, name=name)
    template.body = body
    template.updated_by = user
    template.save()
    EmailTemplateVersion.objects.create(
        template=template, body=body, created_by=user, note=note[:200]
    )
    return template


def email_template_revert(*, version: EmailTemplateVersion, user: Any) -> EmailTemplate:
    """Make an earlier ``version`` active again, as a new version (history only grows);
    checked like any save (``email_template_save``)."""
    template = version.template
    return email_template_save(
        newsletter=template.newsletter,
        name=template.name,
        body=version.body,
        user=user,
        note=f"reverted to the version of {version.created_at:%Y-%m-%d %H:%M:%S} UTC",
    )


@transaction.atomic
def email_template_delete(*, template: EmailTemplate) -> None:
    """Delete a stored template and its versions: the file of its name is used again."""
    template.delete()


SEGMENT_NAME_MAX_LENGTH = 100


def _segment_name_clean(raw_name: object) -> str:
    raw = raw_name if isinstance(raw_name, str) else ""
    name = " ".join(raw.split())
    if not name or len(name) > SEGMENT_NAME_MAX_LENGTH or CONTROL_CHARACTERS.search(raw):
        raise ValidationError(
            {"name": f"A segment's name is 1 to {SEGMENT_NAME_MAX_LENGTH} characters on one line."}
        )
    return name


def _segment_store(*, segment: Segment, name: object, rules: object) -> Segment:
    segment.name = _segment_name_clean(name)
    segment.rules = segment_rules_check(rules, newsletter=segment.newsletter)
    taken = Segment.objects.filter(newsletter_id=segment.newsletter_id, name=segment.name)
    if taken.exclude(pk=segment.pk).exists():
        raise ValidationError({"name": f"{segment.newsletter} has a segment {segment.name!r}."})
    segment.save()
    return segment


@transaction.atomic
def segment_create(*, newsletter: Newsletter, name: object, rules: object) -> Segment:
    """Save a new segment of ``newsletter``; raise ``ValidationError`` naming the field
    (``name``, ``rules``) that is wrong, with nothing saved."""
    return _segment_store(segment=Segment(newsletter=newsletter), name=name, rules=rules)


@transaction.atomic
def segment_update(*, segment: Segment, name: object, rules: object) -> Segment:
    """Change a segment's name and filter (as ``segment_create`` checks them). Sends
    already started keep the filter they started with."""
    return _segment_store(segment=segment, name=name, rules=rules)


@transaction.atomic
def segment_delete(*, segment: Segment) -> None:
    """Delete a segment. Issues that named it (sent or not) keep its filter's copy."""
    segment.delete()
