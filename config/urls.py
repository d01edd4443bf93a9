"""Top-level URLs: admin, health, metrics, API v1, webhooks, OpenAPI."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from ops import views as ops_views

# A database or broker unreachable: 503 with Retry-After (problem+json on /v1 and /webhooks), never a 500 page.
handler500 = "ops.unavailable.server_error"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", ops_views.health, name="health"),
    path("health/live", ops_views.health_live, name="health-live"),
    path("health/ready", ops_views.health_ready, name="health-ready"),
    path("api/health", ops_views.health_ready, name="api-health"),
    path("metrics", ops_views.metrics, name="metrics"),
    path("v1/schema", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its init script as a file, so the Content-Security-Policy needs no inline script.
    path("v1/docs", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("", include("accounts.urls")),
    path("", include("ledger.urls")),
    path("", include("webhooks.urls")),
    path("", include("payouts.urls")),
    path("", include("payouts.chain.urls")),
    path("", include("rounds.urls")),
]
