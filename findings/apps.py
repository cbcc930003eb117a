from typing import Any

from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _json_as_text(sender: Any, connection: Any, **kwargs: Any) -> None:
    """`json` columns (findings' raw data) reach RawJSONField as text, which reads them
    leniently: psycopg's own loader (Python's json) would fail the whole query on a number a
    scanner may send but Python will not read, 5,000 digits long (Django registers the same
    text loader for jsonb)."""
    if connection.vendor == "postgresql":
        from psycopg.types.string import TextLoader

        connection.connection.adapters.register_loader("json", TextLoader)


class FindingsConfig(AppConfig):
    name = "findings"
    verbose_name = "Findings"

    def ready(self) -> None:
        connection_created.connect(_json_as_text, dispatch_uid="findings-json-as-text")
