"""``manage.py process_bounces --mailbox URL``: record the bounces waiting in a mailbox."""

from django.core.management.base import BaseCommand, CommandError

from signalpost.conf import conf
from signalpost.mail.mailboxes import MailboxError
from signalpost.publishing.services import bounces_process


class Command(BaseCommand):
    help = (
        "Read the bounce mailbox (maildir:///path, imap[s]://user:password@host[:port]/folder, "
        "pop3[s]://user:password@host[:port]; default BOUNCE_MAILBOX_URL), record hard and "
        "soft bounces, delete what was handled and list what was not understood (left there)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--mailbox", default=conf.BOUNCE_MAILBOX_URL)
        parser.add_argument("--limit", type=int, default=None, help="read at most this many")

    def handle(self, *args, mailbox, limit, **options):
        if not mailbox:
            raise CommandError("--mailbox is required (or set BOUNCE_MAILBOX_URL)")
        if limit is not None and limit < 1:
            raise CommandError("--limit must be 1 or more")
        try:
            run = bounces_process(mailbox_url=mailbox, limit=limit)
        except MailboxError as error:
            raise CommandError(f"--mailbox: {error}") from None
        counts = ", ".join(f"{kind} {count}" for kind, count in sorted(run.counts.items()))
        self.stdout.write(
            f"Read {sum(run.counts.values())} messages ({counts or 'none'}); "
            f"{run.ended} subscriptions ended."
        )
        for line in run.not_understood:
            self.stdout.write(f"Not understood, left in the mailbox: {line}")
