from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The REST API at /api/v1/ (django-ninja) and its tokens."""

    name = "signalpost.api"
    label = "api"
    verbose_name = "API"
