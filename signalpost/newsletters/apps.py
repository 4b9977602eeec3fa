from django.apps import AppConfig


class NewslettersConfig(AppConfig):
    """Newsletters, their topics and who is subscribed to them."""

    name = "signalpost.newsletters"
    label = "newsletters"
    verbose_name = "Newsletters"
