import sys
import time
from datetime import datetime

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from signalpost.durable.selectors import queue_status
from signalpost.publishing.models import Issue
from signalpost.publishing.selectors import issue_progress
from signalpost.publishing.services import (
    SendStateRefused,
    issue_cancel,
    issue_pause,
    issue_resume,
    issue_schedule,
    issue_send,
    issue_send_test,
)

BAR_WIDTH = 30


class Command(BaseCommand):
    help = (
        "Send an issue now (and follow its progress), schedule it with --at, email a test "
        "with --test-to, pause a running send with --pause, continue it with --resume (which "
        "also restarts a send that stopped), or end it with --cancel. Workers (manage.py "
        "db_worker) do the sending."
    )

    def add_arguments(self, parser):
        parser.add_argument("newsletter", help="The newsletter's slug.")
        parser.add_argument("issue", help="The issue's slug.")
        parser.add_argument("--at", help="Schedule for this ISO 8601 time instead of now.")
        parser.add_argument("--test-to", metavar="EMAIL", help="Only email a test to EMAIL.")
        control = parser.add_mutually_exclusive_group()
        control.add_argument(
            "--pause",
            action="store_true",
            help="Pause a running send: no worker starts another of its messages within a "
            "second. --resume continues it; --cancel ends it.",
        )
        control.add_argument(
            "--resume",
            action="store_true",
            help="Continue a paused send where it stopped, or restart a send that stopped: "
            "what its failed batches left claimed goes back to the queue, with batch tasks "
            "to send it. Never sends anything twice; harmless on a send that is going well.",
        )
        control.add_argument(
            "--cancel",
            action="store_true",
            help="Cancel a running or paused send: every message not sent yet is cancelled "
            "(counted as cancelled, not failed).",
        )
        parser.add_argument(
            "--no-wait", action="store_true", help="Start the send and return at once."
        )
        parser.add_argument(
            "--timeout", type=float, default=None, help="Stop following after this many seconds."
        )

    def handle(
        self,
        *,
        newsletter,
        issue,
        at,
        test_to,
        pause,
        resume,
        cancel,
        no_wait,
        timeout,
        **options,
    ):
        found = (
            Issue.objects.select_related("newsletter")
            .filter(newsletter__slug=newsletter, slug=issue)
            .first()
        )
        if found is None:
            raise CommandError(f"No issue {issue!r} in newsletter {newsletter!r}.")
        if test_to:
            try:
                issue_send_test(issue=found, to_email=test_to)
            except Exception as error:
                raise CommandError(f"Test not sent: {error}") from error
            self.stdout.write(self.style.SUCCESS(f"Test sent to {test_to}."))
            return
        if at:
            self.schedule(found, at)
            return
        if pause or cancel:
            self.pause(found) if pause else self.cancel(found)
            return
        if resume:
            self.resume(found)
        else:
            self.send(found)
        if no_wait:
            return
        if not queue_status()["workers_alive"]:
            self.stderr.write("No worker is running: start one with manage.py db_worker.")
        self.follow(found, timeout=timeout)

    def pause(self, issue):
        try:
            paused = issue_pause(issue=issue)
        except SendStateRefused as error:
            raise CommandError(error.messages[0]) from error
        progress = issue_progress(issue=issue)
        if paused:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Paused {issue.subject!r}: {progress['sent']} sent, "
                    f"{progress['remaining']} to send. Continue with --resume."
                )
            )
        else:
            self.stdout.write(f"{issue.subject!r} was paused already.")

    def cancel(self, issue):
        try:
            cancelled = issue_cancel(issue=issue)
        except SendStateRefused as error:
            raise CommandError(error.messages[0]) from error
        progress = issue_progress(issue=issue)
        self.stdout.write(
            self.style.SUCCESS(
                f"Cancelled {issue.subject!r}: {progress['sent']} sent, {cancelled} cancelled now."
            )
        )

    def resume(self, issue):
        was_paused = issue.status == Issue.Status.PAUSED
        try:
            batches = issue_resume(issue=issue)
        except SendStateRefused as error:
            raise CommandError(
                f"{issue.subject!r} is {issue.status}, not paused or sending: nothing to resume."
            ) from error
        if was_paused:
            self.stdout.write(f"Resumed {issue.subject!r}: {batches} batch task(s) queued.")
        elif batches:
            self.stdout.write(f"Resuming {issue.subject!r}: {batches} batch task(s) queued.")
        else:
            self.stdout.write(f"{issue.subject!r} is on its way: no batch task was missing.")

    def send(self, found):
        if issue_send(issue=found):
            self.stdout.write(f"Sending {found.subject!r} to the subscribers active now.")
        else:
            self.stdout.write(f"{found.subject!r} is already {found.status}; following it.")

    def schedule(self, issue, at):
        try:
            moment = datetime.fromisoformat(at)
        except ValueError as error:
            raise CommandError(f"--at: not an ISO 8601 time: {at!r}") from error
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        try:
            issue_schedule(issue=issue, at=moment)
        except ValidationError as error:
            raise CommandError(error.messages[0]) from error
        self.stdout.write(self.style.SUCCESS(f"Scheduled for {moment.isoformat()}."))

    def follow(self, issue, *, timeout):
        """Draw a progress bar until the send finishes (or ``timeout``)."""
        started = time.monotonic()
        interactive = self.stdout.isatty() if hasattr(self.stdout, "isatty") else False
        last_line = None
        while True:
            issue.refresh_from_db()
            progress = issue_progress(issue=issue)
            line = self.progress_line(progress)
            if interactive:
                self.stdout.write("\r" + line, ending="")
                sys.stdout.flush()
            elif line != last_line:
                self.stdout.write(line)
            last_line = line
            if issue.status in {Issue.Status.SENT, Issue.Status.CANCELLED}:
                break
            if issue.status == Issue.Status.PAUSED:
                self.stdout.write("")
                raise CommandError("The send is paused; continue it with --resume.")
            if timeout is not None and time.monotonic() - started > timeout:
                self.stdout.write("")
                raise CommandError("Still sending; follow it in the admin or run this again.")
            time.sleep(1)
        if interactive:
            self.stdout.write("")
        ended = "Cancelled" if issue.status == Issue.Status.CANCELLED else "Sent"
        self.stdout.write(
            self.style.SUCCESS(
                f"{ended}: {progress['sent']} delivered, {progress['failed']} failed, "
                f"{progress['skipped']} skipped, {progress['cancelled']} cancelled."
            )
        )

    @staticmethod
    def progress_line(progress):
        filled = int(BAR_WIDTH * progress["percent"] / 100)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        eta = progress["expected_finish"]
        if progress.get("preparing"):
            return (
                f"[{bar}] preparing: {progress['total']} recipients so far, "
                f"{progress['sent']} sent, {progress['rate_per_second']}/s"
            )
        return (
            f"[{bar}] {progress['percent']:5.1f}% {progress['sent']}/{progress['total']} sent, "
            f"{progress['failed']} failed, {progress['rate_per_second']}/s"
            + (f", done by {eta:%H:%M:%S}" if eta else "")
        )
