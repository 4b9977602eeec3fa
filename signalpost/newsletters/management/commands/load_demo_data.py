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
        if options["verbosity"] > 1:
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
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_superuser(username=username, email=email, password=password)
        # Shown only while it is still the demo password: once changed, it is nobody's business.
        if user.check_password(password):
            self.stdout.write(f"Staff login: {username} / {password} (the demo password)")
