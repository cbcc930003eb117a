"""The staff pages: dashboard, findings list, finding detail and triage. Server-rendered."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from findings.charts import open_findings_chart
from findings.cursors import encode_cursor
from findings.forms import FindingFilterForm, TriageForm
from findings.models import Finding
from findings.selectors import (
    finding_with_history,
    open_findings_by_repository,
    recent_uploads,
    scanner_data_of,
    staff_findings_page,
    stream_choices,
)
from findings.services import TriageAction, TriageRefused, finding_triage
from gerion.staff import staff_required


@require_GET
@staff_required
def dashboard(request: HttpRequest) -> HttpResponse:
    rows, totals = open_findings_by_repository()
    return render(
        request,
        "findings/dashboard.html",
        {
            "chart": open_findings_chart(rows),
            "rows": rows,
            "totals": totals,
            "total_open": sum(totals.values()),
            "uploads": recent_uploads(),
        },
    )


@require_GET
@staff_required
def finding_list(request: HttpRequest) -> HttpResponse:
    choices = stream_choices()
    form = FindingFilterForm(
        request.GET, repositories=choices["repositories"], branches=choices["branches"]
    )
    page = None
    if form.is_valid():
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

    return render(
        request,
        "findings/list.html",
        {
            "form": form,
            "page": page,
            "next_url": page_link(page.next_cursor, "next") if page else None,
            "previous_url": page_link(page.previous_cursor, "previous") if page else None,
            "first_url": "?" + query.urlencode(),
        },
    )


@require_GET
@staff_required
def finding_detail(request: HttpRequest, pk: int) -> HttpResponse:
    found = finding_with_history(pk)
    if found is None:
        raise Http404("No such finding.")
    finding, events = found
    return render(
        request,
        "findings/detail.html",
        {
            "finding": finding,
            "events": events,
            "raw": json.dumps(
                scanner_data_of(finding), indent=2, sort_keys=True, ensure_ascii=False
            ),
            "can_triage": request.user.has_perm("findings.triage_finding"),
            "triage_form": TriageForm(),
        },
    )


@require_POST
@staff_required
def finding_triage_view(request: HttpRequest, pk: int) -> HttpResponse:
    user = request.user
    if not isinstance(user, User) or not user.has_perm("findings.triage_finding"):
        raise PermissionDenied
    form = TriageForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a triage action.")
    else:
        try:
            finding_triage(
                finding_id=pk,
                action=TriageAction(form.cleaned_data["action"]),
                actor=user,
                reason=form.cleaned_data["reason"],
            )
        except TriageRefused as exc:
            messages.error(request, str(exc))
        except Finding.DoesNotExist as exc:
            raise Http404("No such finding.") from exc
        else:
            messages.success(request, "Triage recorded. Uploads will not change it.")
    return HttpResponseRedirect(reverse("finding-detail", args=[pk]))
