from django.apps import AppConfig


class GerionConfig(AppConfig):
    name = "gerion"
    verbose_name = "Gerion project"

    def ready(self) -> None:
        from gerion import checks, schema  # noqa: F401  (register checks, OpenAPI extension)
