from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from signalpost.durable.decorators import durable_receiver_find
from signalpost.durable.selectors import durable_calls_unknown
from signalpost.durable.services import durable_calls_discard, durable_calls_rename


class Command(BaseCommand):
    help = (
        "Handle the durable calls queued for a receiver id that no longer exists "
        "(manage.py check lists them, durable.E003): run them under the receiver's new id "
        "(--rename-to NEW_ID) or drop them (--discard). Without either, list such ids."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", help="The id (or old import path) the calls name.")
        parser.add_argument("--rename-to", metavar="NEW_ID", help="A declared receiver's id.")
        parser.add_argument("--discard", action="store_true", help="Delete the calls.")

    def handle(
        self, *, name: str | None, rename_to: str | None, discard: bool, **options: Any
    ) -> None:
        if name is None:
            if rename_to or discard:
                raise CommandError("Name the receiver id whose calls to rename or discard.")
            for unknown, count in sorted(durable_calls_unknown().items()):
                self.stdout.write(f"{unknown}: {count} call(s)")
            return
        if bool(rename_to) == discard:
            raise CommandError("Pass exactly one of --rename-to NEW_ID and --discard.")
        if rename_to:
            target = durable_receiver_find(rename_to)
            if target is None or target.id != rename_to:
                raise CommandError(f"No durable receiver has the id {rename_to!r}.")
            tasks, dead_letters = durable_calls_rename(name=name, new_id=rename_to)
            verb = f"Renamed to {rename_to}"
        else:
            tasks, dead_letters = durable_calls_discard(name=name)
            verb = "Discarded"
        self.stdout.write(
            self.style.SUCCESS(f"{verb}: {tasks} queued call(s), {dead_letters} dead letter(s).")
        )
