from django.apps import AppConfig


class SignalpostConfig(AppConfig):
    """The project package as an app: the signal catalogue, its command, templates and static."""

    name = "signalpost"
    verbose_name = "Signalpost"

    def ready(self):
        # The per-task log line (django.tasks' task_finished signal).
        from signalpost import logs  # noqa: F401
