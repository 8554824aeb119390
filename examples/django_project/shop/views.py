"""Views that push Relier tasks; plain sync Django views.

They are csrf_exempt because the example is driven with curl; a real site
keeps CSRF protection on its own forms.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from relier import ResultTimeoutError, TaskFailedError, TaskHandle, TaskNotFoundError
from relier_django import relier_of

import tasks


@csrf_exempt
@require_POST
def signup(request: HttpRequest) -> JsonResponse:
    """Push the welcome mail and answer at once; a worker sends it."""
    handle = tasks.send_welcome.push(request.GET["email"])
    return JsonResponse({"task_id": handle.id})


@csrf_exempt
@require_POST
def notify(request: HttpRequest, user: str) -> JsonResponse:
    """The task's own rate limit (1/s per user): a faster push raises
    AdmissionRejectedError, which AdmissionMiddleware answers with 429."""
    handle = tasks.notify.push(user, request.GET.get("text", ""))
    return JsonResponse({"task_id": handle.id})


@csrf_exempt
@require_POST
def export(request: HttpRequest, report: str) -> JsonResponse:
    """``sales`` and ``signups`` succeed; any other report ends in the DLQ."""
    handle = tasks.export.push(report)
    return JsonResponse({"task_id": handle.id})


@require_GET
def task_result(request: HttpRequest, task_id: str) -> JsonResponse:
    """A task's outcome, waiting up to ``?wait=`` seconds for it to end."""
    handle = TaskHandle(relier_of(), task_id, "", created=False)
    wait = min(float(request.GET.get("wait", 0)), 30.0)
    try:
        result = handle.result(timeout=wait)
    except ResultTimeoutError:
        return JsonResponse({"id": task_id, "state": handle.state()})
    except TaskFailedError as exc:
        body = {"id": task_id, "state": "DEAD", "reason": exc.reason, "error": exc.error}
        return JsonResponse(body)
    except TaskNotFoundError:
        return JsonResponse({"id": task_id, "state": "MISSING"})
    return JsonResponse({"id": task_id, "state": "SUCCEEDED", "result": result})
