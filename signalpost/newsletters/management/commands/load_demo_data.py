from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from signalpost.demo import demo_data_load

DEMO_ADMIN = ("admin", "admin@example.com", "admin")


class Command(BaseCommand):
    help = (
        "Load demo topics, newsletters and subscribers (safe to run again). With DEBUG on, "
        "also create the staff login admin / admin."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-admin", action="store_true", help="Do not create the demo admin login."
        )

    def handle(self, *args, **options):
        count = demo_data_load()
        self.stdout.write(self.style.SUCCESS(f"Demo data ready: {count} newsletters."))
        if options["no_admin"]:
            return
        if not settings.DEBUG:
            raise CommandError(
                "Refusing to create the demo admin/admin login with DEBUG off; "
                "use --no-admin and manage.py createsuperuser."
            )
        username, email, password = DEMO_ADMIN
        User = get_user_model()
        if not User.objects.filter(username=username).exists():
            User.objects.create_superuser(username=username, email=email, password=password)
        self.stdout.write(f"Staff login: {username} / {password} at /admin/")
