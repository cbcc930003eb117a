from django.urls import path

from findings import views

urlpatterns = [path("findings", views.FindingsView.as_view(), name="findings")]
