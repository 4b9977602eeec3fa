from django.apps import AppConfig


class ActivityConfig(AppConfig):
    """The append-only audit trail of every event per profile, written by receivers."""

    name = "signalpost.activity"
    label = "activity"
    verbose_name = "Activity"

    def ready(self):
        from signalpost.activity import receivers  # noqa: F401  (connects them)
