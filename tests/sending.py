"""Starting a send in tests: with its deliveries created, as the workers' preparing would."""

from django_tasks_db.models import DBTaskResult

from signalpost.publishing.models import Issue
from signalpost.publishing.services import issue_prepare_chunk, issue_send
from signalpost.publishing.tasks import issue_prepare


def issue_send_prepared(*, issue: Issue) -> bool:
    """Start sending ``issue`` and run its preparing here, leaving only its batches queued.

    What ``issue_send`` did in one request before workers created the
    deliveries; a test about sending, not preparing, starts from there.
    """
    started = issue_send(issue=issue)
    issue_prepare_rest(issue=issue)
    return started


def issue_prepare_rest(*, issue: Issue) -> None:
    """Run what is left of ``issue``'s preparing here, as the workers' preparing tasks would."""
    more = True
    while more:
        cursor = Issue.objects.values_list("prepared_through_id", flat=True).get(pk=issue.pk)
        more = issue_prepare_chunk(issue_id=issue.pk, after_id=cursor)
    # The preparing tasks queued meanwhile would find their chunk done: no work left.
    DBTaskResult.objects.filter(
        task_path=issue_prepare.module_path, args_kwargs__kwargs__issue_id=issue.pk
    ).delete()
