import json

from django.core.management.base import BaseCommand

from signalpost.introspection import catalogue_report, django_report


class Command(BaseCommand):
    help = (
        "List every signal in Signalpost's catalogue with its declared arguments and every "
        "connected receiver (module.function, sender filter, sync or durable, dispatch_uid), "
        "then Django's own signals that have receivers."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print JSON instead of text.")

    def handle(self, *args, **options):
        catalogue = catalogue_report()
        django = django_report()
        if options["json"]:
            self.stdout.write(json.dumps(self.as_data(catalogue, django), indent=2))
            return
        self.stdout.write(
            self.style.MIGRATE_HEADING(
                "Declared signals (the catalogue, signalpost.signals, first)"
            )
        )
        for signal, receivers in catalogue:
            arguments = ", ".join(signal.arguments)
            optional = "".join(f", [{name}]" for name in signal.optional_arguments)
            self.stdout.write("")
            self.stdout.write(self.style.SUCCESS(f"{signal.name}({arguments}{optional})"))
            self.stdout.write(f"  {signal.__doc__}")
            self.write_receivers(receivers)
        self.stdout.write("")
        self.stdout.write(self.style.MIGRATE_HEADING("Django signals with receivers"))
        for name, _signal, receivers in django:
            self.stdout.write("")
            self.stdout.write(self.style.SUCCESS(name))
            self.write_receivers(receivers)

    def write_receivers(self, receivers):
        if not receivers:
            self.stdout.write("  (no receivers)")
            return
        for info in receivers:
            self.stdout.write(
                f"  -> {info.mode:<7} {info.path}  sender={info.sender}  "
                f"dispatch_uid={info.dispatch_uid or '(none)'}"
            )
            if info.retry_policy:
                self.stdout.write(f"             retry: {info.retry_policy}")

    @staticmethod
    def as_data(catalogue, django):
        def receivers(infos):
            return [info.__dict__ for info in infos]

        return {
            "catalogue": [
                {
                    "name": signal.name,
                    "arguments": list(signal.arguments),
                    "optional_arguments": list(signal.optional_arguments),
                    "doc": signal.__doc__,
                    "receivers": receivers(infos),
                }
                for signal, infos in catalogue
            ],
            "django": [
                {"name": name, "receivers": receivers(infos)} for name, _signal, infos in django
            ],
        }
