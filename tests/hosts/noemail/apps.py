from django.apps import AppConfig


class NoEmailConfig(AppConfig):
    name = "tests.hosts.noemail"
    label = "noemail"
