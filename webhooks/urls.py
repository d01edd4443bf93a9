"""URLs of the webhooks app (mounted at the site root by config/urls.py).

`/simulate/deposit_webhook` is only routed when SIMULATION_ENABLED is on at import time (and the view
checks the setting again), so production, which forces it off, has no such URL.
"""

from django.conf import settings
from django.urls import URLPattern, path

from . import apis, views

urlpatterns: list[URLPattern] = [
    path("v1/deposits", apis.DepositsApi.as_view(), name="deposits"),
    path("v1/deposits/<uuid:deposit_id>", apis.DepositDetailApi.as_view(), name="deposit-detail"),
    path("webhooks/stripe", views.stripe_webhook, name="webhook-stripe"),
    path("webhooks/adyen", views.adyen_webhook, name="webhook-adyen"),
    path("webhooks/deposits", views.custody_deposit_webhook, name="webhook-deposits"),
]

if settings.SIMULATION_ENABLED:
    urlpatterns.append(
        path("simulate/deposit_webhook", views.simulate_deposit_webhook, name="simulate-deposit-webhook")
    )
