from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Profiles: one per email address, optionally linked to a Django user."""

    name = "signalpost.accounts"
    label = "accounts"
    verbose_name = "Subscribers"

    def ready(self):
        from signalpost.accounts import receivers  # noqa: F401  (connects them)
