from django.urls import path

from findings import web

urlpatterns = [
    path("", web.dashboard, name="dashboard"),
    path("findings/", web.finding_list, name="finding-list"),
    path("findings/export.csv", web.finding_export_csv, name="finding-export-csv"),
    path("findings/export.json", web.finding_export_json, name="finding-export-json"),
    path("findings/triage/", web.finding_bulk_triage, name="finding-bulk-triage"),
    path("findings/<int:pk>/", web.finding_detail, name="finding-detail"),
    path("findings/<int:pk>/triage/", web.finding_triage_view, name="finding-triage"),
    path("findings/<int:pk>/assign/", web.finding_assign_view, name="finding-assign"),
    path("findings/<int:pk>/comments/", web.finding_comment_view, name="finding-comment"),
]
