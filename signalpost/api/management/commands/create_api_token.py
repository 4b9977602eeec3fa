from django.core.management.base import BaseCommand, CommandError

from signalpost.api.tokens import api_token_create


class Command(BaseCommand):
    help = "Create an API token and print it (it is shown only once; only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="What the token is for, e.g. 'CRM sync'.")

    def handle(self, *, name, **options):
        if not name.strip() or len(name) > 100:
            raise CommandError("The name must be 1 to 100 characters.")
        _, raw = api_token_create(name=name.strip())
        self.stdout.write(raw)
