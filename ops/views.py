"""Health endpoints and the metrics endpoint."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from .health import check_database, readiness


@require_GET
def health_live(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers (touches nothing; a restart would not fix a database outage)."""
    return JsonResponse({"status": "ok"})


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Health: the process answers and the database is reachable; 503 otherwise."""
    database = check_database()
    ok = database["status"] == "ok"
    return JsonResponse({"status": "ok" if ok else "down", "checks": {"database": database}}, status=200 if ok else 503)


@require_GET
def health_ready(request: HttpRequest) -> JsonResponse:
    """Readiness: PostgreSQL (or SQLite) and the broker; 503 when one is down."""
    ready, body = readiness()
    return JsonResponse(body, status=200 if ready else 503)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition of the default registry."""
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
