from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Outgoing webhooks: signed JSON events posted to integrators' endpoints."""

    name = "signalpost.webhooks"
    label = "webhooks"
    verbose_name = "Webhooks"

    def ready(self):
        from signalpost.webhooks import receivers  # noqa: F401  (connects them)
