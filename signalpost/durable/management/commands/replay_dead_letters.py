from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from signalpost.durable.models import DeadLetter
from signalpost.durable.services import dead_letter_replay


class Command(BaseCommand):
    help = (
        "Replay dead-lettered durable receiver calls: the given ids, or every dead one "
        "(optionally of one --receiver) with --all. A worker runs them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("ids", nargs="*", type=int, help="Dead letter ids to replay.")
        parser.add_argument("--all", action="store_true", help="Replay every dead letter.")
        parser.add_argument("--receiver", help="Only dead letters of this receiver id.")
        parser.add_argument("--dry-run", action="store_true", help="List, replay nothing.")

    def handle(
        self, *, ids: list[int], all: bool, receiver: str | None, dry_run: bool, **options: Any
    ) -> None:
        if not ids and not all:
            raise CommandError("Name dead letter ids to replay, or pass --all.")
        dead_letters = DeadLetter.objects.filter(status=DeadLetter.Status.DEAD).order_by("id")
        if ids:
            found = set(DeadLetter.objects.filter(id__in=ids).values_list("id", flat=True))
            missing = sorted(set(ids) - found)
            if missing:
                raise CommandError(f"No dead letter with id {', '.join(map(str, missing))}.")
            dead_letters = dead_letters.filter(id__in=ids)
        if receiver:
            dead_letters = dead_letters.filter(receiver=receiver)
        replayed = 0
        for dead_letter in dead_letters:
            self.stdout.write(
                f"{dead_letter.id}: {dead_letter.receiver} <- {dead_letter.signal_name} "
                f"({dead_letter.error_class})"
            )
            if not dry_run and dead_letter_replay(dead_letter=dead_letter):
                replayed += 1
        verb = "Would replay" if dry_run else "Queued"
        count = dead_letters.count() if dry_run else replayed
        self.stdout.write(self.style.SUCCESS(f"{verb} {count} dead letter(s)."))
