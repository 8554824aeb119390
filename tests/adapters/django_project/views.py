"""The test project's views: pushes from plain sync views."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from . import tasks


@csrf_exempt  # type: ignore[untyped-decorator]  # Django ships no type hints
def signup(request: HttpRequest) -> JsonResponse:
    handle = tasks.django_welcome.push(request.GET["email"])
    return JsonResponse({"task_id": handle.id})


@csrf_exempt  # type: ignore[untyped-decorator]  # Django ships no type hints
def limited(request: HttpRequest) -> JsonResponse:
    handle = tasks.django_limited.push(int(request.GET.get("n", "1")))
    return JsonResponse({"task_id": handle.id})
