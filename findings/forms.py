"""Forms of the staff pages: the findings filter (GET) and triage (POST)."""

from __future__ import annotations

from typing import Any

from django import forms

from findings.cursors import decode_cursor
from findings.models import SEVERITY_ORDER, ScanType, Status
from findings.selectors import FindingFilters, Sort
from findings.services import TriageAction


class FindingFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=200,
        label="Search",
        help_text="Title, file path, component, CVE or finding id",
    )
    repository_name = forms.ChoiceField(required=False, label="Repository")
    branch_name = forms.ChoiceField(required=False, label="Branch")
    scan_type = forms.ChoiceField(
        required=False, label="Scan type", choices=[("", "Any"), *ScanType.choices]
    )
    severity = forms.ChoiceField(
        required=False,
        label="Severity",
        choices=[("", "Any"), *((s, s.title()) for s in SEVERITY_ORDER)],
    )
    status = forms.ChoiceField(
        required=False, label="Status", choices=[("", "Any"), *Status.choices]
    )
    sort = forms.ChoiceField(required=False, label="Sort", choices=Sort.choices)
    cursor = forms.CharField(required=False, widget=forms.HiddenInput)
    direction = forms.ChoiceField(
        required=False,
        choices=[("next", "next"), ("previous", "previous")],
        widget=forms.HiddenInput,
    )

    def __init__(self, data: Any, *, repositories: list[str], branches: list[str]) -> None:
        super().__init__(data)
        # A value that is not (or no longer) in the menu is still accepted: links from the
        # dashboard and bookmarks must not break when a stream is new or gone.
        for name, values in (("repository_name", repositories), ("branch_name", branches)):
            current = (data or {}).get(name)
            options = sorted(set(values) | ({current} if current else set()))
            field = self.fields[name]
            assert isinstance(field, forms.ChoiceField)
            field.choices = [("", "Any"), *((v, v) for v in options)]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        text = data.get("cursor") or ""
        if text:
            # A cursor holds the sort's keys: (severity rank, id) or (id).
            length = 2 if (data.get("sort") or Sort.SEVERITY) == Sort.SEVERITY else 1
            values = decode_cursor(text, length=length)
            if values is None:
                self.add_error("cursor", "This page link is broken; start from the first page.")
            data["cursor"] = values
        else:
            data["cursor"] = None
        return data

    def filters(self) -> FindingFilters:
        data = self.cleaned_data
        return FindingFilters(
            repository_name=data.get("repository_name") or None,
            branch_name=data.get("branch_name") or None,
            scan_type=data.get("scan_type") or None,
            severities=(data["severity"],) if data.get("severity") else (),
            status=data.get("status") or None,
        )

    @property
    def chosen_sort(self) -> str:
        return self.cleaned_data.get("sort") or Sort.SEVERITY


class TriageForm(forms.Form):
    action = forms.ChoiceField(choices=[(a.value, a.value) for a in TriageAction])
    reason = forms.CharField(required=False, max_length=2000, widget=forms.Textarea)
