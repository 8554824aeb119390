"""The test project's URLs."""

from __future__ import annotations

from django.urls import include, path

from . import views

urlpatterns = [
    path("signup", views.signup),
    path("limited", views.limited),
    path("relier/", include("relier_django.urls")),
]
