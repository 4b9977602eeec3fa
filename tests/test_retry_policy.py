"""Everything retried waits by the one backoff formula, ``RetryPolicy.delay_before``."""

from signalpost.durable.policy import RetryPolicy
from signalpost.newsletters.tasks import RETRY as FORM_RETRY
from signalpost.publishing.services import retry_delay_seconds, send_retry_policy
from signalpost.webhooks.services import retry_policy as webhook_retry_policy


def test_the_wait_doubles_up_to_its_ceiling_with_equal_jitter():
    policy = RetryPolicy(backoff_base=10, backoff_max=60)
    for attempt, ceiling in [(2, 10), (3, 20), (4, 40), (5, 60), (9, 60)]:
        waits = {policy.delay_before(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
        assert len(waits) > 1, "jittered"
    assert RetryPolicy(backoff_base=10, jitter=False).delay_after(3) == 40


def test_an_issue_batch_waits_30_seconds_doubling_to_an_hour_without_jitter(settings):
    settings.SIGNALPOST_SEND_MAX_ATTEMPTS = 7
    assert [retry_delay_seconds(attempts) for attempts in range(9)] == [
        30, 30, 60, 120, 240, 480, 960, 1920, 3600
    ]  # fmt: skip
    assert send_retry_policy().max_attempts == 7


def test_a_webhook_waits_10_seconds_doubling_to_an_hour_with_jitter(settings):
    settings.SIGNALPOST_WEBHOOK_MAX_ATTEMPTS = 4
    policy = webhook_retry_policy()
    assert policy.max_attempts == 4
    assert 5 <= policy.delay_after(1) <= 10
    assert 1800 <= policy.delay_after(20) <= 3600


def test_the_form_tasks_retry_by_a_policy_too():
    assert isinstance(FORM_RETRY, RetryPolicy) and FORM_RETRY.max_attempts == 8
