from django.apps import AppConfig


class DurableConfig(AppConfig):
    """Durable receivers: signal side effects recorded as tasks, retried, recovered, replayable."""

    name = "signalpost.durable"
    label = "durable"
    verbose_name = "Durable receivers"

    def ready(self) -> None:
        from signalpost.durable import receivers  # noqa: F401  (connects them)
