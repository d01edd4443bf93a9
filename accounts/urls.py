"""Account URLs."""

from django.urls import path

from . import apis

urlpatterns = [
    path("v1/auth/login", apis.TokenLoginApi.as_view(), name="auth-login"),
    path("v1/auth/logout", apis.TokenLogoutApi.as_view(), name="auth-logout"),
]
