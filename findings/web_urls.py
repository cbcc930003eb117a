from django.urls import path

from findings import web

urlpatterns = [
    path("", web.dashboard, name="dashboard"),
    path("findings/", web.finding_list, name="finding-list"),
    path("findings/<int:pk>/", web.finding_detail, name="finding-detail"),
    path("findings/<int:pk>/triage/", web.finding_triage_view, name="finding-triage"),
]
