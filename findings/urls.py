from django.urls import path

from findings import views

urlpatterns = [
    path("findings", views.FindingsView.as_view(), name="findings"),
    # The official CLI's `report` command (its newest versions) reads from here.
    path("reporting/findings", views.ReportingFindingsView.as_view(), name="reporting-findings"),
]
