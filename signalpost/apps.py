from django.apps import AppConfig

# Registers the system checks of a project running Signalpost (manage.py check).
from signalpost import checks  # noqa: F401


class SignalpostConfig(AppConfig):
    """The project package as an app: the signal catalogue, its command, templates and static."""

    name = "signalpost"
    verbose_name = "Signalpost"

    def ready(self):
        from signalpost import receivers  # noqa: F401  (connects them)
