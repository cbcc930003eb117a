from django.apps import AppConfig


class GerionConfig(AppConfig):
    name = "gerion"
    verbose_name = "Gerion project"
