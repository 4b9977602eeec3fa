from django.apps import AppConfig


class PublishingConfig(AppConfig):
    """Issues of a newsletter and their deliveries: write, send, archive."""

    name = "signalpost.publishing"
    label = "publishing"
    verbose_name = "Publishing"

    def ready(self):
        from signalpost.publishing import receivers  # noqa: F401  (connects them)
