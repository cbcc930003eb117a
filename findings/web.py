"""The staff pages: dashboard, findings list (with bulk triage and exports), finding detail
(triage, assignee, comments). Server-rendered."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    QueryDict,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from findings.charts import open_findings_chart, trend_chart
from findings.cursors import encode_cursor
from findings.forms import (
    ANY_STATUS,
    AssignForm,
    BulkTriageForm,
    CommentForm,
    FindingFilterForm,
    TriageForm,
)
from findings.models import SEVERITY_ORDER, Finding
from findings.search import search_index_catch_up
from findings.selectors import (
    EXPORT_COLUMNS,
    finding_trends,
    finding_with_history,
    open_findings_by_repository,
    recent_uploads,
    scanner_data_of,
    staff_export_rows,
    staff_findings_page,
    staff_selection_ids,
    stream_choices,
)
from findings.services import (
    TriageAction,
    TriageRefused,
    finding_assign,
    finding_comment_add,
    findings_reopen_expired,
    findings_triage,
)
from gerion.staff import staff_required

TREND_DAYS = (30, 90)
ACTION_WORDS = {
    TriageAction.FALSE_POSITIVE: ("Mark false positive", "marked false positive"),
    TriageAction.RISK_ACCEPTED: ("Accept risk", "risk accepted"),
    TriageAction.REOPEN: ("Reopen", "reopened"),
}


def _triager(request: HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User) or not user.has_perm("findings.triage_finding"):
        raise PermissionDenied
    return user


@require_GET
@staff_required
def dashboard(request: HttpRequest) -> HttpResponse:
    findings_reopen_expired()
    rows, totals, overdue = open_findings_by_repository()
    days = 90 if request.GET.get("days") == "90" else 30
    trends = finding_trends(days)
    return render(
        request,
        "findings/dashboard.html",
        {
            "chart": open_findings_chart(rows),
            "rows": rows,
            "totals": totals,
            "total_open": sum(totals.values()),
            "overdue": overdue,
            "total_overdue": sum(overdue.values()),
            "sla_days": settings.GERION_SLA_DAYS,
            "trends": trends,
            "trend_chart": trend_chart(trends),
            "trend_days": TREND_DAYS,
            "uploads": recent_uploads(),
        },
    )


def _filter_form(request: HttpRequest, data: QueryDict) -> FindingFilterForm:
    choices = stream_choices()
    return FindingFilterForm(
        data,
        repositories=choices["repositories"],
        branches=choices["branches"],
        user_id=request.user.pk,
    )


def _truncated(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def list_rows(findings: list[Finding]) -> list[dict[str, Any]]:
    """What the list shows of each finding, worked out here once: a page of 50 rows would
    otherwise cost some 1,500 template lookups on model properties (most of its time)."""
    rows = []
    for finding in findings:
        if finding.scan_type == "SCA" and finding.component_name:
            package = finding.component_name
            if finding.component_version:
                package += "@" + finding.component_version
            location, fix = "", finding.component_fix
        else:
            package, fix = "", ""
            location = _truncated(finding.file_path or finding.component_name, 60)
            if finding.line_number:
                location += f":{finding.line_number}"
        seen_at: datetime = finding.seen_at  # type: ignore[attr-defined]
        overdue = finding.overdue
        status = finding.status
        rows.append(
            {
                "pk": finding.pk,
                "url": reverse("finding-detail", args=[finding.pk]),
                "title": _truncated(finding.title, 120),
                "severity": finding.severity.lower(),
                "repository": finding.repository_name,
                "branch": finding.branch_name,
                "scan_type": finding.scan_type,
                "package": package,
                "fix": fix,
                "location": location,
                "status": status,
                "status_class": status.lower().replace(" ", "-"),
                "first_seen": finding.first_seen_at.strftime("%Y-%m-%d"),
                "age": finding.age_days,
                "overdue": overdue,
                "due": (
                    f"Open past its {finding.sla_days}-day SLA (due {finding.sla_due:%Y-%m-%d})"
                    if overdue
                    else ""
                ),
                "assignee": finding.assignee.get_username() if finding.assignee else "—",
                "seen_iso": seen_at.isoformat(),
                "seen": seen_at.strftime("%Y-%m-%d %H:%M"),
            }
        )
    return rows


@require_GET
@staff_required
def finding_list(request: HttpRequest) -> HttpResponse:
    findings_reopen_expired()
    form = _filter_form(request, request.GET)
    page = None
    if form.is_valid():
        if form.cleaned_data["q"]:
            search_index_catch_up()
        page = staff_findings_page(
            form.filters(),
            search=form.cleaned_data["q"],
            sort=form.chosen_sort,
            cursor=form.cleaned_data["cursor"],
            backwards=form.cleaned_data.get("direction") == "previous",
        )
    query = request.GET.copy()
    for name in ("cursor", "direction"):
        query.pop(name, None)

    def page_link(cursor: list[int] | None, direction: str) -> str | None:
        if cursor is None:
            return None
        params = query.copy()
        params["cursor"] = encode_cursor(cursor)
        params["direction"] = direction
        return "?" + params.urlencode()

    export_query = ("?" + query.urlencode()) if query else ""
    return render(
        request,
        "findings/list.html",
        {
            "form": form,
            "page": page,
            "rows": list_rows(page.findings) if page else [],
            "next_url": page_link(page.next_cursor, "next") if page else None,
            "previous_url": page_link(page.previous_cursor, "previous") if page else None,
            "first_url": "?" + query.urlencode(),
            "filter_query": query.urlencode(),
            "export_csv_url": reverse("finding-export-csv") + export_query,
            "export_json_url": reverse("finding-export-json") + export_query,
            "can_triage": request.user.has_perm("findings.triage_finding"),
            "any_status": ANY_STATUS,
            "today": timezone.now().date(),
        },
    )


@require_POST
@staff_required
def finding_bulk_triage(request: HttpRequest) -> HttpResponse:
    """Triage the ticked rows or everything the list's filters select: first a confirmation
    with the count, then the decision (refused if the count changed in between)."""
    user = _triager(request)
    form = BulkTriageForm(request.POST)
    filter_query = request.POST.get("filter", "")
    back = reverse("finding-list") + ("?" + filter_query if filter_query else "")
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return HttpResponseRedirect(back)
    data = form.cleaned_data
    action = TriageAction(data["action"])
    if data["scope"] == BulkTriageForm.ALL:
        filters = _filter_form(request, QueryDict(filter_query))
        if not filters.is_valid():
            messages.error(request, "These filters are not valid; apply them again.")
            return HttpResponseRedirect(back)
        if filters.cleaned_data["q"]:
            search_index_catch_up()
        ids = staff_selection_ids(
            filters.filters(),
            search=filters.cleaned_data["q"],
            limit=settings.GERION_BULK_TRIAGE_MAX,
        )
    else:
        ids = data["ids"]
    confirmed = data["confirm"] and data["expected"] == len(ids)
    if not confirmed:
        if data["confirm"]:
            messages.error(
                request, f"The selection changed: {len(ids):,} findings match now. Confirm again."
            )
        return render(
            request,
            "findings/triage_confirm.html",
            {
                "form": form,
                "count": len(ids),
                "too_many": len(ids) > settings.GERION_BULK_TRIAGE_MAX,
                "limit": settings.GERION_BULK_TRIAGE_MAX,
                "action_label": ACTION_WORDS[action][0],
                "back": back,
                "ids": ids if data["scope"] == BulkTriageForm.SELECTED else [],
            },
        )
    try:
        changed = findings_triage(
            ids=ids, action=action, actor=user, reason=data["reason"], until=data["until"]
        )
    except TriageRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            f"{changed:,} finding{'s' if changed != 1 else ''} {ACTION_WORDS[action][1]}. "
            "Uploads will not change it.",
        )
    return HttpResponseRedirect(back)


# --- exports -----------------------------------------------------------------------------------


def _export_rows(request: HttpRequest) -> Iterator[dict[str, Any]]:
    findings_reopen_expired()
    form = _filter_form(request, request.GET)
    if not form.is_valid():
        raise Http404("These filters are not valid.")
    if form.cleaned_data["q"]:
        search_index_catch_up()
    return staff_export_rows(form.filters(), search=form.cleaned_data["q"], sort=form.chosen_sort)


def _attachment(response: StreamingHttpResponse, extension: str) -> StreamingHttpResponse:
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="findings-{stamp}.{extension}"'
    response["Cache-Control"] = "private, no-store"
    return response


class _Echo:
    def write(self, value: str) -> str:
        return value


# A cell starting with one of these is a formula to a spreadsheet: scanner data is not
# trusted, so such cells get a leading apostrophe (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_value(value: Any) -> Any:
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    elif isinstance(value, datetime):
        return value.isoformat()
    elif isinstance(value, bool) or value is None or isinstance(value, int | date):
        return "" if value is None else value
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


@require_GET
@staff_required
def finding_export_csv(request: HttpRequest) -> StreamingHttpResponse:
    rows = _export_rows(request)
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(EXPORT_COLUMNS)
        for row in rows:
            yield writer.writerow([_csv_value(row[name]) for name in EXPORT_COLUMNS])

    return _attachment(
        StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8"), "csv"
    )


def _json_default(value: Any) -> str:
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


@require_GET
@staff_required
def finding_export_json(request: HttpRequest) -> StreamingHttpResponse:
    rows = _export_rows(request)

    def chunks() -> Iterator[str]:
        # One JSON array, written an object at a time.
        separator = "[\n"
        for row in rows:
            yield separator + json.dumps(row, default=_json_default, ensure_ascii=False)
            separator = ",\n"
        yield "[]\n" if separator == "[\n" else "\n]\n"

    return _attachment(StreamingHttpResponse(chunks(), content_type="application/json"), "json")


# --- one finding -------------------------------------------------------------------------------


@require_GET
@staff_required
def finding_detail(request: HttpRequest, pk: int) -> HttpResponse:
    findings_reopen_expired()
    search_index_catch_up()  # "the same CVE elsewhere" is a search
    found = finding_with_history(pk)
    if found is None:
        raise Http404("No such finding.")
    finding = found.finding
    staff = User.objects.filter(is_active=True, is_staff=True).order_by("username")
    return render(
        request,
        "findings/detail.html",
        {
            "finding": finding,
            "page": found,
            "events": found.events,
            "raw": json.dumps(
                scanner_data_of(finding), indent=2, sort_keys=True, ensure_ascii=False
            ),
            "can_triage": request.user.has_perm("findings.triage_finding"),
            "triage_form": TriageForm(),
            "staff": staff.only("id", "username")[:500],
            "severities": SEVERITY_ORDER,
        },
    )


def _back_to(pk: int) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("finding-detail", args=[pk]))


def _on_finding(request: HttpRequest, pk: int, change: Callable[[], str]) -> HttpResponse:
    """Make a change to one finding and go back to its page: the message `change` returns,
    or why the service refused; a 404 for a finding that does not exist."""
    try:
        done = change()
    except TriageRefused as exc:
        messages.error(request, str(exc))
    except Finding.DoesNotExist as exc:
        raise Http404("No such finding.") from exc
    else:
        messages.success(request, done)
    return _back_to(pk)


@require_POST
@staff_required
def finding_triage_view(request: HttpRequest, pk: int) -> HttpResponse:
    user = _triager(request)
    form = TriageForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a triage action (and a valid date, if any).")
        return _back_to(pk)
    data = form.cleaned_data

    def triage() -> str:
        findings_triage(
            ids=[pk],
            action=TriageAction(data["action"]),
            actor=user,
            reason=data["reason"],
            until=data["until"],
        )
        return "Triage recorded. Uploads will not change it."

    return _on_finding(request, pk, triage)


@require_POST
@staff_required
def finding_assign_view(request: HttpRequest, pk: int) -> HttpResponse:
    user = _triager(request)
    form = AssignForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose someone to assign.")
        return _back_to(pk)
    assignee_id = form.cleaned_data["assignee"]

    def assign() -> str:
        assignee = User.objects.filter(pk=assignee_id).first() if assignee_id else None
        if assignee_id and assignee is None:
            raise TriageRefused("No such user.")
        finding_assign(finding_id=pk, assignee=assignee, actor=user)
        return f"Assigned to {assignee.get_username()}." if assignee else "Unassigned."

    return _on_finding(request, pk, assign)


@require_POST
@staff_required
def finding_comment_view(request: HttpRequest, pk: int) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)
    form = CommentForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Write a comment of at most 5,000 characters.")
        return _back_to(pk)

    def comment() -> str:
        finding_comment_add(finding_id=pk, author=user, body=form.cleaned_data["body"])
        return "Comment added."

    return _on_finding(request, pk, comment)
