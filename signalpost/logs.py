"""Logs an operator can use: one line per request and per task, plain or JSON.

A request's line names its URL pattern (``n/<slug:slug>/confirm/<str:token>/``),
never the path or query string a person sent, so tokens and addresses stay out
of the logs; a task's line names the task and its id, never its arguments.
``LOG_FORMAT=json`` writes each record as one JSON object.
"""

import json
import logging
import time
from datetime import UTC, datetime

from django.conf import settings

request_logger = logging.getLogger("signalpost.requests")
task_logger = logging.getLogger("signalpost.tasks")

# Record attributes a JSON line carries besides time, level, logger and message.
JSON_FIELDS = (
    "method",
    "route",
    "status",
    "duration_ms",
    "task",
    "task_id",
    "outcome",
)


class JsonFormatter(logging.Formatter):
    """Format a record as one line of JSON, with the request and task fields it carries."""

    def format(self, record):
        line = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in JSON_FIELDS:
            if hasattr(record, field):
                line[field] = getattr(record, field)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def _route(request):
    """The URL pattern that served ``request``, or what kind of URL it was."""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return "/" + match.route
    if request.path_info.startswith("/" + settings.STATIC_URL.lstrip("/")):
        return "(static)"
    return "(unmatched)"


class RequestLogMiddleware:
    """Log one line per request: method, URL pattern, status and duration."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        route = _route(request)
        request_logger.info(
            "%s %s %s %.1fms",
            request.method,
            route,
            response.status_code,
            duration_ms,
            extra={
                "method": request.method,
                "route": route,
                "status": response.status_code,
                "duration_ms": duration_ms,
            },
        )
        return response
