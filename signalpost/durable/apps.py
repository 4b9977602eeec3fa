from importlib import import_module

from django.apps import AppConfig

from signalpost.conf import conf


class DurableConfig(AppConfig):
    """Durable receivers: signal side effects recorded as tasks, retried, recovered, replayable."""

    name = "signalpost.durable"
    label = "durable"
    verbose_name = "Durable receivers"

    def ready(self) -> None:
        from signalpost.durable import receivers  # noqa: F401  (connects them, registers the checks)

        # Durable receivers declared outside the apps (the tests', the benchmarks'):
        # a worker must know their ids before it runs their calls.
        for module in conf.DURABLE_RECEIVER_MODULES:
            import_module(module.strip())
