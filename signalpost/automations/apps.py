from django.apps import AppConfig


class AutomationsConfig(AppConfig):
    """Email sequences: a catalogue signal enrolls people, workers walk them through steps."""

    name = "signalpost.automations"
    label = "automations"
    verbose_name = "Automations"

    def ready(self):
        from signalpost.automations import receivers  # noqa: F401  (connects them)
