from django.apps import AppConfig


class EngagementConfig(AppConfig):
    """Clicks and opens of issues: recorded off the request path, scanners filtered out."""

    name = "signalpost.engagement"
    label = "engagement"
    verbose_name = "Engagement"

    def ready(self):
        from signalpost.engagement import receivers  # noqa: F401  (connects them)
