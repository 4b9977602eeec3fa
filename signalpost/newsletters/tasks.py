"""The work of the public forms that take an address, run by the worker.

``/subscribe/``, ``/unsubscribe/`` and ``/preferences/`` queue one of these for
every address they accept, known or not, and answer at once: the request does
the same work whoever asked, so its response time tells nothing about who is
known (``subscribe_queue`` and its neighbours, below: every enqueue of a kind goes
through its one function). Each task is a wrapper
around the service that does the work, which does nothing for an unknown address
and sends its signals in its own transaction, as ever.

A failing run (the database restarting, SQLite's lock held too long) is queued
again with backoff, up to ``RETRY.max_attempts`` runs; its failed row keeps the
traceback.

The worker runs the sign-ups it claims together by ``subscribe_from_form_batch``:
the new addresses set-based, in one transaction, the rest one by one as above.
"""

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.tasks import task
from django.utils import timezone

from signalpost.conf import conf
from signalpost.durable.batches import task_batch_runner
from signalpost.durable.policy import RetryPolicy
from signalpost.durable.services import task_enqueue, task_enqueue_without_flush
from signalpost.newsletters import imports
from signalpost.newsletters.models import Newsletter, SubscriberImport
from signalpost.newsletters.selectors import newsletter_by_pk, newsletters_by_pk
from signalpost.newsletters.services import (
    USER_AGENT_MAX_LENGTH,
    ConsentEvidence,
    SignupRequest,
    Source,
    preferences_link_request,
    subscribe,
    subscribe_new_addresses,
    unsubscribe,
)

logger = logging.getLogger(__name__)

# Ahead of issue batches and emails: a person waits for these.
PRIORITY = 10
RETRY = RetryPolicy(max_attempts=8, backoff_base=10, backoff_max=600)


def _run_or_retry(this_task, service, *, attempt, **kwargs):
    """Call ``service(**kwargs)``; should it fail, queue ``this_task`` again, then re-raise."""
    try:
        return service(**kwargs)
    except Exception:
        if attempt < RETRY.max_attempts:
            run_after = timezone.now() + timedelta(seconds=RETRY.delay_before(attempt + 1))
            task_enqueue(this_task.using(run_after=run_after), attempt=attempt + 1, **kwargs)
        else:
            logger.error("%s failed %s times; given up", this_task.module_path, attempt)
        raise


def _subscribe(*, email, newsletter_id, name, consent, source):
    newsletter = newsletter_by_pk(newsletter_id)
    if newsletter is None:
        return  # deleted since the request
    subscribe(
        email=email,
        newsletter=newsletter,
        name=name,
        source=source,
        consent=_consent(consent),
    )


def _consent(consent: dict[str, Any]) -> ConsentEvidence:
    """The ``ConsentEvidence`` a form task carries as ``consent`` (at, ip, user_agent)."""
    return ConsentEvidence(
        at=datetime.fromisoformat(consent["at"]),
        ip=consent["ip"],
        user_agent=consent["user_agent"],
    )


def _unsubscribe(*, email, newsletter_id, reason):
    newsletter = newsletter_by_pk(newsletter_id)
    if newsletter is not None:
        unsubscribe(email=email, newsletter=newsletter, reason=reason)


def _preferences_link(*, email):
    preferences_link_request(email=email)


@task(priority=PRIORITY)
def subscribe_from_form(*, email, newsletter_id, name, consent, source="form", attempt=1):
    """Run ``subscribe`` for a ``/subscribe/`` POST, or an embedded form's (``source="embed"``);
    ``consent`` holds its at, ip, user_agent."""
    _run_or_retry(
        subscribe_from_form,
        _subscribe,
        attempt=attempt,
        email=email,
        newsletter_id=newsletter_id,
        name=name,
        consent=consent,
        source=source,
    )


@task_batch_runner(subscribe_from_form)
def subscribe_from_form_batch(calls: list[dict[str, Any]]) -> dict[int, BaseException]:
    """Run the calls of ``subscribe_from_form`` a worker claimed together; return the
    errors of those that failed, by index.

    The sign-ups of new addresses are written set-based in one transaction
    (``subscribe_new_addresses``); every other call then runs as the task alone runs it
    (its own transaction, its retry): a known or invalid address, one asked for twice
    in the batch, a newsletter deleted since. Should the set-based transaction fail,
    it is rolled back and every call runs alone, so a failing sign-up fails alone.
    """
    requests = _signup_requests(calls)
    indexes = list(requests)
    try:
        handled = {indexes[i] for i in subscribe_new_addresses(requests=list(requests.values()))}
    except Exception:
        logger.warning("%d sign-ups failed together; each runs alone", len(indexes), exc_info=True)
        handled = set()
    errors: dict[int, BaseException] = {}
    for index, call in enumerate(calls):
        if index in handled:
            continue
        try:
            subscribe_from_form.call(**call)
        except Exception as error:
            errors[index] = error
    return errors


def _signup_requests(calls: list[dict[str, Any]]) -> dict[int, SignupRequest]:
    """The calls that can be written set-based, as ``SignupRequest`` by index: those whose
    arguments are well formed and whose newsletter exists."""
    ids = {call.get("newsletter_id") for call in calls}
    newsletters = newsletters_by_pk(pk for pk in ids if isinstance(pk, int))
    requests = {}
    for index, call in enumerate(calls):
        try:
            email, name = call["email"], call["name"]
            if isinstance(email, str) and isinstance(name, str):
                requests[index] = SignupRequest(
                    email=email,
                    newsletter=newsletters[call["newsletter_id"]],
                    name=name,
                    source=call.get("source", Source.FORM.value),
                    consent=_consent(call["consent"]),
                )
        except (KeyError, TypeError, ValueError):
            continue  # run alone, it fails as the task would
    return requests


@task(priority=PRIORITY)
def unsubscribe_from_form(*, email, newsletter_id, reason, attempt=1):
    """Run ``unsubscribe`` for an ``/unsubscribe/`` POST: nothing for an unknown address."""
    _run_or_retry(
        unsubscribe_from_form,
        _unsubscribe,
        attempt=attempt,
        email=email,
        newsletter_id=newsletter_id,
        reason=reason,
    )


@task(priority=PRIORITY)
def preferences_link_from_form(*, email, attempt=1):
    """Run ``preferences_link_request`` for a ``/preferences/`` POST: nothing for a stranger."""
    _run_or_retry(preferences_link_from_form, _preferences_link, attempt=attempt, email=email)


# The public forms that take an address queue their work for the worker through the
# functions below, whatever the address: the request then does the same work (the same
# SQL statements, the same task row) for a stranger as for a subscriber, and its
# response time tells nobody who is known. Each task runs its service.


def subscribe_queue(*, email, newsletter, name, consent, source=Source.FORM):
    """Queue ``subscribe`` of ``email`` to ``newsletter`` from a public form: the site's
    (``source`` form) or one embedded on another website (``source`` embed).

    The subscription is pending or active (with ``user_subscribed`` and the welcome,
    or ``subscription_requested`` and the confirmation email) once the worker ran it.
    """
    call = {
        "email": email,
        "newsletter_id": newsletter.pk,
        "name": name,
        "source": Source(source).value,
        "consent": {
            "at": consent.at.isoformat(),
            "ip": consent.ip,
            "user_agent": consent.user_agent[:USER_AGENT_MAX_LENGTH],
        },
    }
    confirms = newsletter.opt_in == Newsletter.OptIn.DOUBLE or source == Source.EMBED
    if confirms and conf.SUBSCRIBE_ASYNC_COMMIT:
        # At most a confirmation email comes of it (see subscribe()): the task row's
        # commit need not wait for the disk.
        task_enqueue_without_flush(subscribe_from_form, **call)
    else:
        with transaction.atomic():
            task_enqueue(subscribe_from_form, **call)


@transaction.atomic
def unsubscribe_queue(*, email, newsletter, reason):
    """Queue ``unsubscribe`` of ``email`` from ``newsletter`` (the public form)."""
    task_enqueue(unsubscribe_from_form, email=email, newsletter_id=newsletter.pk, reason=reason)


@transaction.atomic
def preferences_link_request_queue(*, email):
    """Queue ``preferences_link_request`` for ``email`` (the public form)."""
    task_enqueue(preferences_link_from_form, email=email)


@task(priority=PRIORITY - 1)
def subscriber_import_from_admin(*, subscriber_import_id):
    """Run a CSV import staff started in the admin (``imports.subscriber_import_run``)."""
    imports.subscriber_import_run(subscriber_import_id=subscriber_import_id)


def subscriber_import_queue(*, subscriber_import: SubscriberImport) -> None:
    """Queue the import of a stored ``SubscriberImport`` (in the caller's transaction)."""
    task_enqueue(subscriber_import_from_admin, subscriber_import_id=subscriber_import.pk)
