from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from signalpost.durable.selectors import queue_status


@require_safe
@staff_member_required
# Being staff only opens the admin; the queue names receivers and shows failures.
@permission_required("durable.view_deadletter", raise_exception=True)
def queue_status_page(request: HttpRequest) -> HttpResponse:
    """The queue's health for staff: HTML, or JSON with ``?format=json`` for monitoring."""
    status = queue_status()
    if request.GET.get("format") == "json":
        return JsonResponse(status, encoder=DjangoJSONEncoder)
    for entry in status["metrics"]["throughput"]:
        # Long dotted ids may break after a dot on a phone.
        entry["name_parts"] = entry["name"].split(".")
    return render(
        request,
        "durable/queue_status.html",
        # The admin's own context (sidebar, user links, site header): the page is one of its.
        {**admin.site.each_context(request), "status": status, "title": "Task queue"},
    )
