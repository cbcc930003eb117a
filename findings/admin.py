"""Read-only admin for uploads and findings. Uploads write them; staff triage on the staff
pages, where who and when is recorded."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from findings.models import Finding, FindingEvent, Status, Stream, Upload
from findings.selectors import status_q, with_last_seen


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    # Counting a million rows on every page is slow and tells an operator nothing.
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class _StreamFieldFilter(admin.SimpleListFilter):
    """Choices from the small streams table, not a DISTINCT over every finding."""

    field: str

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        values = Stream.objects.order_by(self.field).values_list(self.field, flat=True).distinct()
        return [(value, value) for value in values[:500]]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value():
            return queryset.filter(**{self.field: self.value()})
        return queryset


class RepositoryFilter(_StreamFieldFilter):
    title = "repository"
    parameter_name = field = "repository_name"


class BranchFilter(_StreamFieldFilter):
    title = "branch"
    parameter_name = field = "branch_name"


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(s.value, s.label) for s in Status]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in Status.values:
            return queryset.filter(status_q(str(self.value())))
        return queryset


@admin.register(Upload)
class UploadAdmin(ReadOnlyAdmin):
    list_display = [
        "received_at",
        "repository_name",
        "branch_name",
        "scan_type",
        "build_id",
        "client_id",
        "received",
        "created",
        "updated",
        "reactivated",
        "mitigated",
    ]
    list_filter = [RepositoryFilter, BranchFilter, "scan_type", "received_at"]
    search_fields = ["repository_name", "branch_name", "build_id", "client_id", "commit_hash"]
    date_hierarchy = "received_at"


class FindingEventInline(admin.TabularInline[FindingEvent, Finding]):
    model = FindingEvent
    fields = readonly_fields = ("at", "kind", "build_id", "upload", "actor", "reason")
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Finding)
class FindingAdmin(ReadOnlyAdmin):
    list_display = [
        "finding_id",
        "title",
        "severity",
        "scan_type",
        "repository_name",
        "branch_name",
        "status",
        "last_seen",
    ]
    list_filter = [RepositoryFilter, BranchFilter, "severity", "scan_type", StatusFilter]
    search_fields = ["=finding_id", "title"]
    inlines = [FindingEventInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Finding]:
        return with_last_seen(super().get_queryset(request))

    @admin.display(description="last seen", ordering="seen_at")
    def last_seen(self, obj: Finding) -> Any:
        return getattr(obj, "seen_at", obj.last_seen_at)


@admin.register(Stream)
class StreamAdmin(ReadOnlyAdmin):
    list_display = ["repository_name", "branch_name", "scan_type", "head_at", "head_build_id"]
    list_filter = ["scan_type"]
    search_fields = ["repository_name", "branch_name"]
