from django.apps import AppConfig

# The project's checks too: they say so when the app 'signalpost' is missing.
from signalpost import checks  # noqa: F401


class NewslettersConfig(AppConfig):
    """Newsletters, their topics and who is subscribed to them."""

    name = "signalpost.newsletters"
    label = "newsletters"
    verbose_name = "Newsletters"

    def ready(self):
        from signalpost.newsletters import receivers  # noqa: F401  (connects them)
