"""Reads of newsletters and subscriptions."""

import json
from collections.abc import Callable, Iterable
from typing import Any, cast

from django.core.cache import cache
from django.db import connection
from django.db.models import Case, Count, IntegerField, Prefetch, Q, QuerySet, Value, When

from signalpost.accounts.models import Profile
from signalpost.newsletters.attributes import EditableAttribute
from signalpost.newsletters.models import EmailTemplate, Newsletter, Segment, Subscription, Topic
from signalpost.newsletters.segments import segment_filter
from signalpost.postgresql.estimates import EXACT_BELOW, rows_estimate
from signalpost.rows import row_fetch

LIVE_STATUSES = [Subscription.Status.PENDING, Subscription.Status.ACTIVE]


def newsletters_public() -> QuerySet[Newsletter]:
    """Return the public newsletters, by name, with their topics."""
    return Newsletter.objects.filter(is_public=True).prefetch_related("topics")


def newsletter_by_slug(slug: str, *, public_only: bool) -> Newsletter | None:
    """Return the newsletter with ``slug`` (only a public one if ``public_only``), or ``None``.

    Every subscribe and unsubscribe POST starts here. Building and compiling
    ``filter(slug=...).first()`` costs several times what running it does, so
    the condition is written out and read by ``row_fetch``.
    """
    # A concrete field's column is never None (the stubs type it str | None).
    quote: Callable[[str | None], str] = connection.ops.quote_name  # type: ignore[assignment]
    meta = Newsletter._meta
    where = f"{quote(meta.get_field('slug').column)} = %s"
    if public_only:
        where += f" AND {quote(meta.get_field('is_public').column)}"
    return row_fetch(Newsletter, where=where, params=[slug], using=connection.alias)


def newsletter_by_pk(pk: int) -> Newsletter | None:
    """Return the newsletter with primary key ``pk``, or ``None``: what
    ``Newsletter.objects.filter(pk=pk).first()`` returns, read by ``row_fetch``.

    Every form task the worker runs starts here; compiling the ORM's query cost
    ~15 % of the worker's CPU per sign-up (bench/subscribe_worker.py --profile).
    """
    quote: Callable[[str | None], str] = connection.ops.quote_name  # type: ignore[assignment]
    where = f"{quote(Newsletter._meta.pk.column)} = %s"
    return row_fetch(Newsletter, where=where, params=[pk], using=connection.alias)


def newsletters_by_pk(pks: Iterable[int]) -> dict[int, Newsletter]:
    """Return the newsletters of ``pks`` that exist, by primary key: one query for a batch."""
    return Newsletter.objects.in_bulk(list(pks))


def topics_with_public_newsletters() -> tuple[list[Topic], list[Newsletter]]:
    """Return ``(topics, untopical)``: topics having public newsletters, and the rest.

    Each topic carries ``public_newsletters``; a newsletter with several topics
    is listed under each of them.
    """
    topics = (
        Topic.objects.filter(newsletters__is_public=True)
        .distinct()
        .prefetch_related(
            Prefetch(
                "newsletters",
                queryset=Newsletter.objects.filter(is_public=True),
                to_attr="public_newsletters",
            )
        )
    )
    untopical = Newsletter.objects.filter(is_public=True, topics=None)
    return list(topics), list(untopical)


def subscriptions_active(*, newsletter: Newsletter) -> QuerySet[Subscription]:
    """Return ``newsletter``'s active subscriptions with their profiles."""
    return Subscription.objects.filter(
        newsletter=newsletter, status=Subscription.Status.ACTIVE
    ).select_related("profile")


# Past EXACT_BELOW subscriptions in all, the active counts per newsletter are counted
# at most this often: one aggregate over a million subscriptions takes ~350 ms.
ACTIVE_COUNTS_SECONDS = 120


def newsletters_with_active_count(queryset: QuerySet[Newsletter]) -> QuerySet[Newsletter]:
    """Annotate each newsletter with ``active_subscriber_count``, whatever the list's size
    in two queries: exact and fresh while all subscriptions are fewer than
    ``EXACT_BELOW`` (20,000), at most ``ACTIVE_COUNTS_SECONDS`` old past that."""
    counts = _active_counts()
    if not counts:
        return queryset.annotate(active_subscriber_count=Value(0))
    return queryset.annotate(
        active_subscriber_count=Case(
            *(When(pk=pk, then=Value(count)) for pk, count in counts.items()),
            default=Value(0),
            output_field=IntegerField(),
        )
    )


def _active_counts() -> dict[int, int]:
    def count() -> dict[int, int]:
        return dict(
            Subscription.objects.filter(status=Subscription.Status.ACTIVE)
            .values_list("newsletter")
            .annotate(count=Count("id"))
            .order_by()
        )

    estimate = rows_estimate(Subscription.objects.all())
    if estimate is None or estimate < EXACT_BELOW:
        return count()
    counts = cache.get_or_set("signalpost:newsletter-active-counts", count, ACTIVE_COUNTS_SECONDS)
    return cast(dict[int, int], counts)


def subscription_of(*, profile_id: int, newsletter: Newsletter) -> Subscription | None:
    """Return the subscription of profile ``profile_id`` to ``newsletter``, or ``None``."""
    return (
        Subscription.objects.filter(profile_id=profile_id, newsletter=newsletter)
        .select_related("profile", "newsletter")
        .first()
    )


def newsletters_for_preferences(*, profile: Profile) -> QuerySet[Newsletter]:
    """Return the newsletters a profile may choose from: the public ones and any of theirs."""
    return (
        Newsletter.objects.filter(
            Q(is_public=True)
            | Q(subscriptions__profile=profile, subscriptions__status__in=LIVE_STATUSES)
        )
        .distinct()
        .order_by("name")
    )


def newsletters_subscribed(*, profile: Profile) -> QuerySet[Newsletter]:
    """Return the newsletters ``profile`` has a pending or active subscription to."""
    return Newsletter.objects.filter(
        subscriptions__profile=profile, subscriptions__status__in=LIVE_STATUSES
    )


def newsletter_languages_subscribed(*, profile: Profile) -> set[str]:
    """Return the languages (``""``: the site's default) of the newsletters ``profile``
    has a pending or active subscription to."""
    return set(newsletters_subscribed(profile=profile).values_list("language", flat=True))


def subscriptions_batch_cte(*, subscription_ids: list[int]) -> tuple[str, list[Any]] | None:
    """Return ``(sql, params)`` for ``WITH batch AS MATERIALIZED (SELECT profile_id, status
    ...)`` over the subscriptions ``subscription_ids``, or ``None`` on a database without it.

    Receivers of ``subscribers_imported`` put it in front of one ``INSERT ... SELECT ... FROM
    batch``. MATERIALIZED keeps the lookup on the primary key whatever the statistics say: with
    an import's stale statistics PostgreSQL once preferred the (newsletter, status) index and
    tested every subscription of the newsletter against the list (1.1 s a batch instead of
    90 ms). The ids go as one parameter, an array or JSON text, so the SQL text is the same
    for every batch (SQLite keeps each distinct statement compiled in its cache).
    """
    meta = Subscription._meta
    # A concrete field's column is never None (the stubs type it str | None).
    quote: Callable[[str | None], str] = connection.ops.quote_name  # type: ignore[assignment]
    select = (
        f"SELECT {quote(meta.get_field('profile').column)} AS profile_id, "
        f"{quote(meta.get_field('status').column)} AS status FROM {quote(meta.db_table)} "
        f"WHERE {quote(meta.pk.column)}"
    )
    if connection.vendor == "postgresql":
        ids = f" = ANY(%s::{meta.pk.rel_db_type(connection)}[])"
        return f"WITH batch AS MATERIALIZED ({select}{ids}) ", [list(subscription_ids)]
    if connection.vendor == "sqlite":
        ids = " IN (SELECT value FROM json_each(%s))"
        return f"WITH batch AS MATERIALIZED ({select}{ids}) ", [json.dumps(subscription_ids)]
    return None


def email_template_stored(*, name: str, newsletter: Newsletter | None) -> str | None:
    """Return the body of the stored template ``name`` for ``newsletter`` (its own first,
    then the one for every newsletter), or ``None`` when there is none: use the files."""
    newsletters = Q(newsletter__isnull=True)
    if newsletter is not None:
        newsletters |= Q(newsletter=newsletter)
    bodies: dict[int | None, str] = dict(
        EmailTemplate.objects.filter(newsletters, name=name).values_list("newsletter_id", "body")
    )
    own = bodies.get(newsletter.pk) if newsletter is not None else None
    return own if own is not None else bodies.get(None)


def newsletters_for_user(*, user: Any) -> list[tuple[Newsletter, str | None]]:
    """Return ``(newsletter, status)`` for the account component: every public newsletter
    and any other ``user`` is subscribed to, by name, with their live subscription's status
    (``pending`` or ``active``) or ``None``. Three queries; two for a user without a profile."""
    profile = Profile.objects.filter(user=user).first() if user.is_authenticated else None
    statuses: dict[int, str] = {}
    if profile is not None:
        statuses = dict(
            Subscription.objects.filter(profile=profile, status__in=LIVE_STATUSES).values_list(
                "newsletter_id", "status"
            )
        )
    newsletters = Newsletter.objects.filter(Q(is_public=True) | Q(pk__in=list(statuses)))
    return [(newsletter, statuses.get(newsletter.pk)) for newsletter in newsletters]


def segment_subscriptions(*, newsletter_id: int, rules: dict[str, Any]) -> QuerySet[Subscription]:
    """The active subscriptions of newsletter ``newsletter_id`` that checked ``rules`` match."""
    return Subscription.objects.filter(
        newsletter_id=newsletter_id, status=Subscription.Status.ACTIVE
    ).filter(segment_filter(rules, newsletter_id=newsletter_id))


def segment_count(*, segment: Segment) -> int:
    """How many active subscribers ``segment`` matches now, exactly."""
    return segment_subscriptions(newsletter_id=segment.newsletter_id, rules=segment.rules).count()


def attributes_editable_by(*, profile: Profile) -> list[EditableAttribute]:
    """The attributes ``profile`` may edit: those the newsletters they receive declare
    (the first declaration of a key wins, newsletters in name order)."""
    declared: dict[str, EditableAttribute] = {}
    for newsletter in newsletters_subscribed(profile=profile).order_by("name"):
        for attribute in newsletter.editable_attributes:
            declared.setdefault(attribute.key, attribute)
    return list(declared.values())
