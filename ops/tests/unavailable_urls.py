"""Test-only URLs: the project's, plus two views that hand a job to the broker inside the request (the
production code enqueues after commit, robustly; these show what a broker error raised in a request
becomes, on an API view and on a plain webhook-style view)."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import handler500
from config.urls import urlpatterns as project_urlpatterns
from ops.tasks import escalate_overdue_waivers


class EnqueueApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def post(self, request: Request) -> Response:
        escalate_overdue_waivers.delay()
        return Response({"queued": True}, status=202)


def enqueue_view(request: HttpRequest) -> HttpResponse:
    escalate_overdue_waivers.delay()
    return JsonResponse({"queued": True}, status=202)


urlpatterns = [
    path("v1/_test/enqueue", EnqueueApi.as_view()),
    path("webhooks/_test/enqueue", enqueue_view),
    *project_urlpatterns,
]
__all__ = ["handler500", "urlpatterns"]
