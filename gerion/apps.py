from django.apps import AppConfig


class GerionConfig(AppConfig):
    name = "gerion"
    verbose_name = "Gerion project"

    def ready(self) -> None:
        # Register checks, the OpenAPI extension and the sign-in failure receivers.
        from gerion import checks, login, schema  # noqa: F401
