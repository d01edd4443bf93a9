"""The admin site with the operator's console: the dashboard as its home, plus timelines and the report.

Installed through `ops.console.apps.ConsoleAdminConfig` (Django's documented way to replace the default
admin site), so every `admin.site.register` keeps working.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path


class ConsoleAdminSite(admin.AdminSite):
    index_template = "ops/console/index.html"

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        from .views import dashboard_context

        return super().index(request, {**dashboard_context(request), **(extra_context or {})})

    def get_urls(self) -> list[URLResolver | URLPattern]:
        from . import views

        def wrap(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
            """Behind the admin's login and permission checks; the view is given this site (its context)."""

            def site_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
                return view(request, *args, site=self, **kwargs)

            return self.admin_view(site_view)

        console = [
            path("console/players/", wrap(views.player_search_view), name="console-player-search"),
            path("console/players/<int:user_id>/", wrap(views.player_view), name="console-player"),
            path("console/withdrawals/<int:withdrawal_id>/", wrap(views.withdrawal_view), name="console-withdrawal"),
            path("console/rounds/<str:code>/", wrap(views.round_view), name="console-round"),
            path("console/report/", wrap(views.report_view), name="console-report"),
        ]
        return console + super().get_urls()
