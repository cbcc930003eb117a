"""The operators' admin: issue keys (plaintext shown once), revoke with confirmation, audit.

Every write goes through apikeys.services, so that the admin, the management commands and any
later interface create, revoke, delete and audit keys the same way.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import unquote
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timeuntil

from apikeys.models import ApiKey, AuditEvent, Permission, RevocationIsFinal
from apikeys.repositories import ALL, describe, normalize_patterns, split_patterns
from apikeys.services import (
    DEFAULT_GRACE,
    MAX_GRACE,
    api_key_create,
    api_key_delete,
    api_key_revoke,
    api_key_roll,
    api_key_update,
)


def _operator(request: HttpRequest) -> User:
    """The signed-in operator (admin views only run for authenticated staff)."""
    user = request.user
    assert isinstance(user, User)
    return user


class RepositoryPatternsField(forms.CharField):
    """Glob patterns, one per line (commas work too), stored as a list."""

    widget = forms.Textarea(attrs={"rows": 3, "cols": 40, "spellcheck": "false"})

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, list | tuple) else value

    def to_python(self, value: Any) -> list[str] | None:  # type: ignore[override]
        if value is None:
            return None  # not in the form data at all: see ApiKeyForm.clean_repository_patterns
        try:
            return normalize_patterns(split_patterns(str(value)))
        except ValidationError as exc:
            raise ValidationError(exc.messages) from exc


class ApiKeyForm(forms.ModelForm[ApiKey]):
    permissions = forms.MultipleChoiceField(
        choices=Permission.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="At least one.",
    )
    repository_patterns = RepositoryPatternsField(
        label="Repositories",
        initial=ALL,
        required=False,
        help_text=(
            "The repositories this key may upload to and read, one pattern per line: "
            "<code>acme/web-shop</code> (exactly that one), <code>acme/*</code> (every "
            "repository under acme/, sub-groups included), <code>*</code> (all). "
            "Narrowing applies to the key's tokens from their next request."
        ),
    )

    class Meta:
        model = ApiKey
        fields = ["name", "client_id", "permissions", "repository_patterns", "expires_at"]

    def clean_repository_patterns(self) -> list[str]:
        """A post without the field (a script, a page from before the field existed) leaves
        an existing key's repositories as they are, and gives a new key the default, `*`.
        An empty field is refused: it never silently means "every repository"."""
        patterns: list[str] | None = self.cleaned_data.get("repository_patterns")
        if patterns is not None:
            return patterns
        return list(self.instance.repository_patterns) if self.instance.pk else [ALL]

    def clean_expires_at(self) -> Any:
        expires_at = self.cleaned_data.get("expires_at")
        initial = self.instance.expires_at if self.instance.pk else None
        if expires_at is not None and expires_at != initial and expires_at <= timezone.now():
            raise ValidationError("The expiry must be in the future.")
        return expires_at


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(s.value, s.label) for s in ApiKey.Status]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        now = timezone.now()
        if self.value() == ApiKey.Status.ACTIVE:
            return queryset & ApiKey.objects.usable(now).filter(retires_at__isnull=True)
        if self.value() == ApiKey.Status.RETIRING:
            return queryset & ApiKey.objects.usable(now).filter(retires_at__isnull=False)
        if self.value() == ApiKey.Status.EXPIRED:
            return queryset.filter(
                Q(expires_at__lte=now) | Q(retires_at__lte=now), revoked_at__isnull=True
            )
        if self.value() == ApiKey.Status.REVOKED:
            return queryset.filter(revoked_at__isnull=False)
        return queryset


class PermissionFilter(admin.SimpleListFilter):
    title = "permission"
    parameter_name = "permission"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(value, value) for value in Permission.values]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        if self.value() in Permission.values:
            # The JSON text contains the quoted permission: portable across PostgreSQL/SQLite.
            return queryset.filter(permissions__icontains=f'"{self.value()}"')
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin[ApiKey]):
    form = ApiKeyForm
    list_display = [
        "name",
        "client_id",
        "api_key_id",
        "status_badge",
        "permission_list",
        "repository_list",
        "expires_at",
        "last_used_at",
        "created_at",
    ]
    list_filter = [StatusFilter, PermissionFilter, "created_at", "expires_at"]
    search_fields = ["name", "client_id", "lookup_id"]
    ordering = ["-created_at"]
    actions = ["revoke_selected", "roll_key", "delete_selected"]
    change_form_template = "admin/apikeys/apikey/change_form.html"
    list_select_related = ["rolled_from"]

    class Media:
        css = {"all": ["apikeys/admin.css"]}

    # --- display ----------------------------------------------------------------------------

    @admin.display(description="API key id", ordering="lookup_id")
    def api_key_id(self, obj: ApiKey) -> str:
        return obj.api_key_id

    @admin.display(description="status")
    def status_badge(self, obj: ApiKey) -> str:
        now = timezone.now()
        status = obj.status(now)
        badge = format_html(
            '<span class="apikey-status apikey-status-{}">{}</span>', status.value, status.label
        )
        note = ""
        if status == ApiKey.Status.RETIRING and obj.retires_at is not None:
            successors = ", ".join(k.api_key_id for k in obj.successors.all())
            note = f"{timeuntil(obj.retires_at, now)} left" + (
                f"; successor {successors}" if successors else ""
            )
        elif obj.rolled_from is not None:
            note = f"successor of {obj.rolled_from.api_key_id}"
        if not note:
            return badge
        return format_html('{} <span class="apikey-rolling">({})</span>', badge, note)

    @admin.display(description="permissions")
    def permission_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.permissions)

    @admin.display(description="repositories")
    def repository_list(self, obj: ApiKey) -> str:
        return "all" if ALL in obj.repository_patterns else ", ".join(obj.repository_patterns)

    @admin.display(description="may touch")
    def repository_scope(self, obj: ApiKey) -> str:
        """The patterns in words, and the repositories with findings they reach today."""
        from findings.selectors import known_repositories  # findings depends on apikeys

        rules = format_html_join(
            "", "<li>{}</li>", ((line,) for line in describe(obj.repository_patterns))
        )
        known = known_repositories(tuple(obj.repository_patterns))
        if known.total == 0:
            reach = "No repository has findings yet."
        elif known.matching == 0:
            reach = f"None of the {known.total} repositories with findings."
        else:
            more = known.matching - len(known.first)
            reach = (
                f"{known.matching} of the {known.total} repositories with findings: "
                + ", ".join(known.first)
                + (f" and {more} more." if more else ".")
            )
        return format_html(
            '<ul class="apikey-scope">{}</ul><p class="apikey-scope-reach">{}</p>', rules, reach
        )

    @admin.display(description="rolling")
    def rolling(self, obj: ApiKey) -> str:
        lines = []
        if obj.rolled_from is not None:
            lines.append(
                format_html(
                    'Successor of <a href="{}">{}</a>.',
                    reverse("admin:apikeys_apikey_change", args=[obj.rolled_from.pk]),
                    obj.rolled_from.api_key_id,
                )
            )
        if obj.retires_at is not None:
            now = timezone.now()
            when = (
                format_html("retires in {} ({})", timeuntil(obj.retires_at, now), obj.retires_at)
                if obj.retires_at > now
                else format_html("retired at {}", obj.retires_at)
            )
            successors = format_html_join(
                ", ",
                '<a href="{}">{}</a>',
                (
                    (reverse("admin:apikeys_apikey_change", args=[k.pk]), k.api_key_id)
                    for k in obj.successors.all()
                ),
            )
            lines.append(format_html("Rolled: {}; successor {}.", when, successors or "deleted"))
        return format_html_join(" ", "{}", ((line,) for line in lines)) or "-"

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("name", "client_id", "permissions", "repository_patterns", "expires_at")
        return (
            "name",
            "client_id",
            "api_key_id",
            "status_badge",
            "rolling",
            "permissions",
            "repository_patterns",
            "repository_scope",
            "expires_at",
            "created_at",
            "created_by",
            "last_used_at",
            "revoked_at",
            "revoked_by",
        )

    def get_readonly_fields(
        self, request: HttpRequest, obj: ApiKey | None = None
    ) -> tuple[str, ...]:
        if obj is None:
            return ()
        # A revoked or rolled key is shown entirely read-only (see has_change_permission).
        return (
            "client_id",
            "api_key_id",
            "status_badge",
            "rolling",
            "repository_scope",
            "created_at",
            "created_by",
            "last_used_at",
            "revoked_at",
            "revoked_by",
        )

    # --- permissions ---------------------------------------------------------------------------

    def has_change_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        # A revoked key is kept for audit and cannot change; a rolled key stays as it was
        # until it retires (its successor is the one to change): both are shown read-only.
        if obj is not None and (obj.revoked_at is not None or obj.retires_at is not None):
            return False
        return super().has_change_permission(request, obj)

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("apikeys.revoke_apikey"))

    def has_roll_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("apikeys.roll_apikey"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiKey]:
        return super().get_queryset(request).prefetch_related("successors")

    # --- writes go through the services ----------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            # `obj` already carries the form's values; the service compares with the stored row.
            api_key_update(
                api_key=ApiKey.objects.get(pk=obj.pk),
                changed_by=_operator(request),
                name=data["name"],
                permissions=list(data["permissions"]),
                expires_at=data.get("expires_at"),
                repository_patterns=data["repository_patterns"],
            )
            return
        created, plaintext = api_key_create(
            name=data["name"],
            client_id=data["client_id"],
            permissions=list(data["permissions"]),
            expires_at=data.get("expires_at"),
            repository_patterns=data["repository_patterns"],
            created_by=_operator(request),
        )
        obj.pk = created.pk
        obj.refresh_from_db()
        # Kept on this request object only, for response_add; never stored or logged.
        request._gerion_plaintext_key = plaintext  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None
    ) -> HttpResponse:
        plaintext = getattr(request, "_gerion_plaintext_key", None)
        if plaintext is None:
            return super().response_add(request, obj, post_url_continue)
        return self._show_key_once(request, obj, plaintext, title="API key created")

    def _show_key_once(
        self,
        request: HttpRequest,
        api_key: ApiKey,
        plaintext: str,
        *,
        title: str,
        rolled_from: ApiKey | None = None,
    ) -> HttpResponse:
        response = TemplateResponse(
            request,
            "admin/apikeys/apikey/key_created.html",
            {
                **self.admin_site.each_context(request),
                "title": title,
                "opts": self.opts,
                "api_key": api_key,
                "plaintext": plaintext,
                "rolled_from": rolled_from,
                # None once the grace is over (0 hours: at once).
                "time_left": (
                    timeuntil(rolled_from.retires_at)
                    if rolled_from is not None
                    and rolled_from.retires_at is not None
                    and rolled_from.retires_at > timezone.now()
                    else None
                ),
                "change_url": reverse("admin:apikeys_apikey_change", args=[api_key.pk]),
                "list_url": reverse("admin:apikeys_apikey_changelist"),
            },
        )
        # The one page that ever shows the key: no cache may keep it.
        response["Cache-Control"] = "no-store"
        return response

    def delete_model(self, request: HttpRequest, obj: ApiKey) -> None:
        api_key_delete(api_key=obj, deleted_by=_operator(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            api_key_delete(api_key=api_key, deleted_by=_operator(request))

    # --- revoking: one action, always confirmed ----------------------------------------------

    @admin.action(description="Revoke selected API keys", permissions=["revoke"])
    def revoke_selected(
        self, request: HttpRequest, queryset: QuerySet[ApiKey]
    ) -> HttpResponse | None:
        if request.POST.get("confirm") == "yes":
            self._revoke(request, list(queryset))
            return None
        return self._revoke_confirmation(request, list(queryset), via_action=True)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except (ValidationError, RevocationIsFinal) as exc:
            # A race the form could not see: another operator took the client_id, or revoked
            # the key, a moment ago. Say so instead of failing with a 500.
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_revoke_permission(request):
            raise PermissionDenied
        api_key = self.get_object(request, unquote(object_id))
        if api_key is None:
            raise Http404("No such API key.")
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            self._revoke(request, [api_key])
            return HttpResponseRedirect(reverse("admin:apikeys_apikey_change", args=[api_key.pk]))
        return self._revoke_confirmation(request, [api_key], via_action=False)

    def _revoke(self, request: HttpRequest, keys: list[ApiKey]) -> None:
        user = _operator(request)
        revoked = [k for k in keys if api_key_revoke(api_key=k, revoked_by=user)]
        if revoked:
            names = ", ".join(f"{k.name} ({k.api_key_id})" for k in revoked)
            self.message_user(
                request,
                f"Revoked {len(revoked)} API key(s): {names}. "
                "Their tokens are refused from now on.",
                messages.SUCCESS,
            )
        skipped = len(keys) - len(revoked)
        if skipped:
            self.message_user(request, f"{skipped} key(s) were already revoked.", messages.INFO)

    def _revoke_confirmation(
        self, request: HttpRequest, keys: list[ApiKey], *, via_action: bool
    ) -> HttpResponse:
        return TemplateResponse(
            request,
            "admin/apikeys/apikey/revoke_confirmation.html",
            {
                **self.admin_site.each_context(request),
                "title": "Revoke API keys?",
                "opts": self.opts,
                "keys": keys,
                "active_keys": [k for k in keys if k.revoked_at is None],
                "via_action": via_action,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            },
        )

    # --- rolling: one key at a time, confirmed with its grace period ---------------------------

    @admin.action(
        description="Roll key (new secret, old one kept for a grace period)", permissions=["roll"]
    )
    def roll_key(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> HttpResponse | None:
        keys = list(queryset)
        if len(keys) != 1:
            # Each roll shows a new key once: one page, one key.
            self.message_user(request, "Select exactly one key to roll.", messages.WARNING)
            return None
        return self._roll(request, keys[0], via_action=True)

    def roll_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_roll_permission(request):
            raise PermissionDenied
        api_key = self.get_object(request, unquote(object_id))
        if api_key is None:
            raise Http404("No such API key.")
        return self._roll(request, api_key, via_action=False)

    def _roll(self, request: HttpRequest, api_key: ApiKey, *, via_action: bool) -> HttpResponse:
        form = RollForm(request.POST if request.POST.get("confirm") == "yes" else None)
        if form.is_bound and form.is_valid():
            try:
                successor, plaintext = api_key_roll(
                    api_key=api_key,
                    grace=timedelta(hours=float(form.cleaned_data["grace_hours"])),
                    rolled_by=_operator(request),
                )
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
                return HttpResponseRedirect(
                    reverse("admin:apikeys_apikey_change", args=[api_key.pk])
                )
            return self._show_key_once(
                request, successor, plaintext, title="API key rolled", rolled_from=api_key
            )
        return TemplateResponse(
            request,
            "admin/apikeys/apikey/roll_confirmation.html",
            {
                **self.admin_site.each_context(request),
                "title": "Roll this API key?",
                "opts": self.opts,
                "api_key": api_key,
                "status": api_key.status(),
                "form": form,
                "via_action": via_action,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            },
        )

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "<path:object_id>/revoke/",
                self.admin_site.admin_view(self.revoke_view),
                name="apikeys_apikey_revoke",
            ),
            path(
                "<path:object_id>/roll/",
                self.admin_site.admin_view(self.roll_view),
                name="apikeys_apikey_roll",
            ),
        ]
        return custom + super().get_urls()


class RollForm(forms.Form):
    grace_hours = forms.DecimalField(
        label="Grace period (hours)",
        initial=DEFAULT_GRACE // timedelta(hours=1),
        min_value=0,
        max_value=MAX_GRACE // timedelta(hours=1),
        decimal_places=2,
        help_text=(
            "How long the old key keeps working while the new one is deployed: 0 stops it at "
            "once. Then it expires, with every token it minted."
        ),
    )


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin[AuditEvent]):
    """Who created, changed, revoked and deleted which key, and signing-key events. Read-only."""

    list_display = ["at", "action", "subject", "client_id", "actor_name", "detail"]
    list_filter = ["action", "at"]
    search_fields = ["subject", "client_id", "actor_name"]
    date_hierarchy = "at"
    list_select_related = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False
