import sys

from django.core.management.base import BaseCommand, CommandError

from signalpost.newsletters.imports import subscribers_export
from signalpost.newsletters.models import Newsletter, Subscription


class Command(BaseCommand):
    help = "Export a newsletter's subscribers as CSV (to a file, or standard output)."

    def add_arguments(self, parser):
        parser.add_argument("--newsletter", required=True, help="The newsletter's slug.")
        parser.add_argument(
            "--status",
            action="append",
            choices=Subscription.Status.values,
            help="Only these statuses (repeat for several; default: all).",
        )
        parser.add_argument("-o", "--output", help="The CSV file to write (default: stdout).")

    def handle(self, *, newsletter, status, output, **options):
        target = Newsletter.objects.filter(slug=newsletter).first()
        if target is None:
            raise CommandError(f"No newsletter {newsletter!r}.")
        lines = subscribers_export(newsletter=target, statuses=status)
        if output:
            with open(output, "w", newline="") as file:
                file.writelines(lines)
        else:
            sys.stdout.writelines(lines)
