"""Reads of API keys and their audit trail."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from apikeys.keys import lookup_id_from_api_key_id
from apikeys.models import ApiKey

T = TypeVar("T")

# What authentication and every token check decide on: state, secret hash, permissions,
# repositories. The secret hash is compared in Python.
STATE_FIELDS = (
    "id",
    "client_id",
    "lookup_id",
    "secret_hash",
    "permissions",
    "expires_at",
    "revoked_at",
    "retires_at",
    "last_used_at",
    "repository_patterns",
)

Converter = Callable[[Any, Any, BaseDatabaseWrapper], Any]


@dataclass(frozen=True)
class _Statement:
    sql: str
    attnames: list[str]
    # (column index, its expression, converters) for the columns that need converting.
    converters: tuple[tuple[int, Any, tuple[Converter, ...]], ...]


@functools.cache
def _state_statement(vendor: str) -> _Statement:
    """The key-state SELECT and the conversions of its columns (JSON text, SQLite's dates),
    worked out once per process and backend instead of compiled by the ORM on every request;
    the conversions are Django's own (backend and field converters, as the ORM applies).
    They read settings only (the connection's time zone), so one set serves every thread."""
    connection = connections[DEFAULT_DB_ALIAS]
    quote = connection.ops.quote_name
    fields = [field for field in ApiKey._meta.concrete_fields if field.name in STATE_FIELDS]
    table = ApiKey._meta.db_table
    columns = ", ".join(quote(str(field.column)) for field in fields)
    converters = []
    for index, field in enumerate(fields):
        column = field.get_col(table)
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((index, column, tuple(found)))
    return _Statement(
        # Identifiers from the model, quoted by the backend; the lookup id is a bound parameter.
        sql=f"SELECT {columns} FROM {quote(table)} WHERE {quote('lookup_id')} = %s",  # noqa: S608
        attnames=[field.attname for field in fields],
        converters=tuple(converters),
    )


def _as_first_statement(connection: BaseDatabaseWrapper, run: Callable[[], T]) -> T:
    """Run the request's first statement, standing in for Django's connection health check
    (CONN_HEALTH_CHECKS), which would otherwise spend a `SELECT 1` round trip on every
    request before it. A pooled connection that the server dropped (restart, failover, idle
    timeout) fails here instead; it is replaced and the statement runs once more, as after a
    failed health check. Later statements of the request find the check done."""
    # Django 5.2's health-check flags (not in the type stubs; Django is pinned to 5.2, and
    # tests/apikeys/test_fast_path.py fails if they stop meaning this).
    if (
        connection.connection is None
        or not connection.health_check_enabled  # type: ignore[attr-defined]
        or connection.health_check_done  # type: ignore[attr-defined]
        or connection.in_atomic_block
    ):
        return run()
    connection.health_check_done = True  # type: ignore[attr-defined]
    try:
        return run()
    except (OperationalError, InterfaceError):
        connection.close()
        return run()


def api_key_state(*, lookup_id: str) -> ApiKey | None:
    """The key with this lookup id, loaded with STATE_FIELDS only, or None: one statement on
    the unique index, nothing compiled per call. Token checks and authentication read the key
    through here whenever the state a worker keeps is not confirmed (apikeys.state_cache)."""
    connection = connections[DEFAULT_DB_ALIAS]
    statement = _state_statement(connection.vendor)

    def fetch() -> Any:
        with connection.cursor() as cursor:
            cursor.execute(statement.sql, [lookup_id])
            return cursor.fetchone()

    row = _as_first_statement(connection, fetch)
    if row is None:
        return None
    values = list(row)
    for index, column, converters in statement.converters:
        for convert in converters:
            values[index] = convert(values[index], column, connection)
    return ApiKey.from_db(DEFAULT_DB_ALIAS, statement.attnames, values)


def api_key_get(*, api_key_id: str) -> ApiKey | None:
    """The key named by its public id (`key-<lookup>`), or None."""
    lookup_id = lookup_id_from_api_key_id(api_key_id)
    if lookup_id is None:
        return None
    return ApiKey.objects.filter(lookup_id=lookup_id).first()
