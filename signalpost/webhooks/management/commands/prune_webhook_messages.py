from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from signalpost.webhooks.services import messages_prune

MAX_DAYS = 36_500


def days(raw):
    try:
        value = int(raw)
    except ValueError:
        raise CommandError(f"--min-age-days must be a whole number of days, not {raw!r}") from None
    if not 1 <= value <= MAX_DAYS:
        raise CommandError(f"--min-age-days must be 1 to {MAX_DAYS}, not {value}")
    return value


class Command(BaseCommand):
    help = (
        "Delete webhook messages delivered or given up more than --min-age-days ago, with "
        "their attempt logs (pending ones stay). Run it from cron, beside "
        "prune_db_task_results."
    )

    def add_arguments(self, parser):
        parser.add_argument("--min-age-days", default="30", help="Default: 30.")
        parser.add_argument("--dry-run", action="store_true", help="Count, delete nothing.")

    def handle(self, *, min_age_days, dry_run, **options):
        older_than = timezone.now() - timedelta(days=days(min_age_days))
        count = messages_prune(older_than=older_than, dry_run=dry_run)
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(
            self.style.SUCCESS(f"{verb} {count} webhook messages older than {older_than:%Y-%m-%d}.")
        )
