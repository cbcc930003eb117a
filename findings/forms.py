"""Forms of the staff pages: the findings filter (GET) and triage (POST)."""

from __future__ import annotations

from typing import Any

from django import forms

from findings.cursors import decode_cursor
from findings.models import SEVERITY_ORDER, ScanType, Status
from findings.selectors import FindingFilters, Sort
from findings.services import TriageAction

ANY_STATUS = "all"
ASSIGNED_TO_ME = "me"


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
    # The list opens on open findings, the set the dashboard counts; ANY_STATUS shows all.
    status = forms.ChoiceField(
        required=False,
        label="Status",
        choices=[
            (Status.ACTIVE.value, "Open"),
            *((value, label) for value, label in Status.choices if value != Status.ACTIVE),
            (ANY_STATUS, "Any status"),
        ],
    )
    assigned = forms.ChoiceField(
        required=False, label="Assignee", choices=[("", "Anyone"), (ASSIGNED_TO_ME, "Me")]
    )
    overdue = forms.BooleanField(required=False, label="Overdue only")
    sort = forms.ChoiceField(required=False, label="Sort", choices=Sort.choices)
    cursor = forms.CharField(required=False, widget=forms.HiddenInput)
    direction = forms.ChoiceField(
        required=False,
        choices=[("next", "next"), ("previous", "previous")],
        widget=forms.HiddenInput,
    )

    def __init__(
        self, data: Any, *, repositories: list[str], branches: list[str], user_id: int | None
    ) -> None:
        super().__init__(data)
        self.user_id = user_id
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
            status=self.chosen_status if self.chosen_status != ANY_STATUS else None,
            assignee_id=self.user_id if data.get("assigned") == ASSIGNED_TO_ME else None,
            overdue=bool(data.get("overdue")),
        )

    @property
    def chosen_status(self) -> str:
        return self.cleaned_data.get("status") or Status.ACTIVE.value

    @property
    def chosen_sort(self) -> str:
        return self.cleaned_data.get("sort") or Sort.SEVERITY


class TriageForm(forms.Form):
    action = forms.ChoiceField(choices=[(a.value, a.value) for a in TriageAction])
    reason = forms.CharField(required=False, max_length=2000, widget=forms.Textarea)
    until = forms.DateField(required=False, label="Accepted until")


class IdListField(forms.Field):
    """Finding ids from checkboxes (several values under one name)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[int]:
        if not value:
            return []
        try:
            ids = sorted({int(v) for v in value})
        except (TypeError, ValueError) as exc:
            raise forms.ValidationError("Invalid selection.") from exc
        if len(ids) > STAFF_PAGE_MAX_IDS:
            raise forms.ValidationError("Too many findings selected.")
        return ids


# Checkboxes come from one page of the list.
STAFF_PAGE_MAX_IDS = 1000


class BulkTriageForm(TriageForm):
    """The list's bulk triage: the ticked rows, or everything the list's filters select."""

    SELECTED = "selected"
    ALL = "all"

    scope = forms.ChoiceField(choices=[(SELECTED, SELECTED), (ALL, ALL)])
    ids = IdListField(required=False)
    # The list's query string: what "all matching" means.
    filter = forms.CharField(required=False, max_length=4000, widget=forms.HiddenInput)
    # The count the confirmation showed; a different count asks again.
    expected = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("scope") == self.SELECTED and not data.get("ids"):
            raise forms.ValidationError("Tick the findings to triage, or choose all matching.")
        return data


class CommentForm(forms.Form):
    body = forms.CharField(max_length=5000, widget=forms.Textarea, label="Comment")


class AssignForm(forms.Form):
    # A user id, or empty for nobody; the service checks the user is active staff.
    assignee = forms.IntegerField(required=False, min_value=1)
