"""Small filters of the staff pages."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def get_item(mapping: dict[str, Any], key: str) -> Any:
    return mapping.get(key)


@register.filter
def days(value: float) -> str:
    """A duration in days, as a person reads it: "3.5 days", "18 hours", "40 days"."""
    if value < 1:
        return f"{value * 24:.0f} hours"
    if value < 10:
        return f"{value:.1f} days"
    return f"{value:.0f} days"


@register.filter
def external_cwe(value: Any) -> str | None:
    """The number of a CWE id ("CWE-79", "79" or 79), or None."""
    text = str(value).strip().upper().removeprefix("CWE-")
    return text if text.isdigit() else None
