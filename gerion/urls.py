from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from gerion.login import limit_failed_logins, limit_password_checks

# The admin carries the service's name, like the staff pages (templates/admin/base_site.html).
admin.site.site_header = "Gerion"
admin.site.site_title = "Gerion"
admin.site.index_title = "Administration"
# Every form that checks a password counts failures (per address, username and browser).
admin.site.login = limit_failed_logins(admin.site.login)  # type: ignore[assignment]
admin.site.password_change = limit_password_checks(  # type: ignore[assignment]
    admin.site.password_change
)

urlpatterns = [
    path("api/v1/", include("apikeys.urls")),
    path("api/v1/", include("findings.urls")),
    path("api/v1/schema", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file: no inline script (CSP).
    path("api/v1/docs", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    path("admin/", admin.site.urls),
    path("accounts/login/", limit_failed_logins(auth_views.LoginView.as_view()), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("findings.web_urls")),
]

handler500 = "gerion.views.server_error"
