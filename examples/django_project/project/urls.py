"""The example's URLs: its own views, and Relier's admin API at /relier/."""

from __future__ import annotations

from django.urls import include, path

from shop import views

urlpatterns = [
    path("signup", views.signup),
    path("notify/<str:user>", views.notify),
    path("exports/<str:report>", views.export),
    path("tasks/<str:task_id>", views.task_result),
    path("relier/", include("relier_django.urls")),
]
