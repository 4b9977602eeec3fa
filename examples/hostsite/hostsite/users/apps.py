from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "hostsite.users"
    label = "users"

    def ready(self):
        from hostsite.users import receivers  # noqa: F401  (connects them)
