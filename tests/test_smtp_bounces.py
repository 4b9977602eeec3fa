"""A recipient the mail server refuses for good during the SMTP transaction is a hard bounce.

Real SMTP on loopback (``smtp_inbox``) and the real sending task: ``550``,
``551``, ``553`` or ``554`` with a ``5.1.x`` enhanced code ends every
subscription of the address at once, so the next issue does not go to it;
other permanent refusals fail the delivery only, and ``4xx`` is never a bounce.
"""

import pytest

from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import subscribe
from signalpost.publishing.models import Delivery
from signalpost.publishing.services import issue_create, issue_send
from signalpost.signals import bounce_received
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter
from tests.recorders import SignalRecorder

pytestmark = pytest.mark.django_db(transaction=True)

GONE = "gone@example.com"


@pytest.fixture
def letters(db):
    weekly, daily = make_newsletter(slug="weekly"), make_newsletter(slug="daily")
    for address in ("ann@example.com", GONE):
        for letter in (weekly, daily):
            subscribe(email=address, newsletter=letter, source="admin")
    return weekly, daily


def send(letter, subject="Hi"):
    issue_send(issue=issue_create(newsletter=letter, subject=subject, body_markdown="x"))
    run_worker_until_idle()


@pytest.mark.parametrize(
    "reply",
    [
        "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown",
        "551 5.1.6 User has moved",
        "553 5.1.3 Bad recipient address syntax",
        "554 5.1.1 User unknown",
    ],
)
def test_a_5_1_x_refusal_ends_every_subscription_of_the_address(smtp_inbox, letters, reply):
    weekly, daily = letters
    smtp_inbox.refuse_with[GONE] = reply

    with SignalRecorder(bounce_received) as bounced:
        send(weekly)

    statuses = dict(
        Subscription.objects.filter(profile__email=GONE).values_list("newsletter__slug", "status")
    )
    assert statuses == {"weekly": "bounced", "daily": "bounced"}
    assert {call["bounce_type"] for call in bounced.calls} == {"hard"}
    assert Delivery.objects.get(email=GONE).status == "failed"
    send(daily, subject="Next")
    assert [e.rcpt_tos for e in smtp_inbox.envelopes] == [["ann@example.com"], ["ann@example.com"]]


@pytest.mark.parametrize(
    "reply",
    [
        "554 5.7.1 Rejected by policy",
        "552 5.2.2 Mailbox full",
        "550 Mailbox unavailable",  # no enhanced code: nothing says it is the address
        "450 4.1.1 Try again later",
        "451 4.3.0 Temporary failure",
    ],
)
def test_other_refusals_are_not_hard_bounces(smtp_inbox, letters, reply):
    weekly, _ = letters
    smtp_inbox.refuse_with[GONE] = reply

    send(weekly)

    assert set(
        Subscription.objects.filter(profile__email=GONE).values_list("status", flat=True)
    ) == {"active"}
