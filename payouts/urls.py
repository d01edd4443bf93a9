"""URLs of the payouts app (mounted at the site root by config/urls.py)."""

from django.urls import path

from . import apis, webhooks

urlpatterns = [
    path("v1/withdrawals", apis.WithdrawalsApi.as_view(), name="withdrawals"),
    path("v1/withdrawals/<int:withdrawal_id>", apis.WithdrawalDetailApi.as_view(), name="withdrawal-detail"),
    path("v1/withdrawals/<int:withdrawal_id>/cancel", apis.WithdrawalCancelApi.as_view(), name="withdrawal-cancel"),
    path("v1/withdrawals/<int:withdrawal_id>/approve", apis.WithdrawalApproveApi.as_view(), name="withdrawal-approve"),
    path("v1/withdrawals/<int:withdrawal_id>/reject", apis.WithdrawalRejectApi.as_view(), name="withdrawal-reject"),
    path("v1/payouts/manual-review", apis.ManualReviewListApi.as_view(), name="payouts-manual-review"),
    path("v1/payouts/<int:withdrawal_id>/resolve", apis.PayoutResolveApi.as_view(), name="payouts-resolve"),
    path("webhooks/payouts/adyen", webhooks.adyen_payout_webhook, name="payouts-webhook-adyen"),
    path("webhooks/payouts/stripe", webhooks.stripe_payout_webhook, name="payouts-webhook-stripe"),
]
