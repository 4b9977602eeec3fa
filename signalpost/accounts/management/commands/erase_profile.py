from django.core.management.base import BaseCommand, CommandError

from signalpost.accounts.selectors import profile_by_email
from signalpost.privacy.services import profile_erase


class Command(BaseCommand):
    help = (
        "Erase a person's profile: subscriptions, activity and name go, deliveries stay "
        "anonymised, profile_erased is sent (and the subscriber.erased webhook)."
    )

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")

    def handle(self, *, email, yes, **options):
        profile = profile_by_email(email=email)
        if profile is None:
            raise CommandError(f"No profile for {email!r}.")
        if not yes:
            answer = input(f"Erase everything about {profile.email}? Type 'erase': ")
            if answer.strip() != "erase":
                raise CommandError("Nothing erased.")
        user = profile.user
        erased = profile_erase(profile=profile)
        self.stdout.write(self.style.SUCCESS(f"Erased {erased}."))
        if user is not None:
            # The account is the project's, not the newsletter's: not Signalpost's to delete.
            self.stderr.write(
                f"The user account {user.get_username()!r} still has this address: "
                "delete it (admin, Users) if it should go too."
            )
