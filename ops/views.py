"""Health endpoints and the metrics endpoint."""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

from .errors import problem_json_response
from .front_door import metrics_access_allowed
from .health import check_database, readiness
from .metrics import DatabaseCollector


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
    """Readiness: PostgreSQL and the broker; 503 when one is down."""
    ready, body = readiness()
    return JsonResponse(body, status=200 if ready else 503)


def metrics_registry() -> CollectorRegistry:
    """Return the registry to expose: this process's, or every worker's under multiprocess mode.

    With PROMETHEUS_MULTIPROC_DIR set (gunicorn with several workers), counters and histograms are
    summed over the files every worker writes, so a scrape reads the same figure whichever worker
    answers; the database-backed figures are read once, here.
    """
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(DatabaseCollector())
    return registry


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition, for a scraper with the bearer token or from an allowed address."""
    if not metrics_access_allowed(request):
        response = problem_json_response(
            {
                "type": "metrics/forbidden",
                "title": "Metrics are private",
                "status": 401,
                "detail": "Send Authorization: Bearer <METRICS_TOKEN>, or scrape from an allowed address.",
            }
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)
