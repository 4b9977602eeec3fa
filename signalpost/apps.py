from django.apps import AppConfig


class SignalpostConfig(AppConfig):
    """The project package as an app: the signal catalogue, its command, templates and static."""

    name = "signalpost"
    verbose_name = "Signalpost"

    def ready(self):
        from signalpost import receivers  # noqa: F401  (connects them)
