from django.urls import path

from apikeys import views

urlpatterns = [
    path("auth/m2m/authenticate", views.AuthenticateView.as_view(), name="m2m-authenticate"),
    path("auth/jwks", views.JWKSView.as_view(), name="jwks"),
]
