"""Refusals of the deposits and webhooks app, each with a stable problem type.

Every refusal of a webhook leaves everything as it was: nothing stored, credited or enqueued.
"""

from ops.errors import ApplicationError


class WebhookError(ApplicationError):
    code = "webhook/error"
    title = "Webhook refused"
    status = 400


class InvalidSignature(WebhookError):
    code = "webhook/invalid-signature"
    title = "Webhook signature missing, wrong or expired"


class MalformedPayload(WebhookError):
    code = "webhook/malformed"
    title = "Webhook body is not the expected JSON"


class InvalidPayload(WebhookError):
    code = "webhook/invalid-payload"
    title = "Webhook payload has invalid fields"


class InvalidAmount(WebhookError):
    code = "webhook/invalid-amount"
    title = "Amount must be a positive whole number of minor units"


class UnknownCurrency(WebhookError):
    code = "webhook/unknown-currency"
    title = "Unknown currency"


class UnknownUser(WebhookError):
    code = "webhook/unknown-user"
    title = "No player with this id"
    status = 422


class UnsupportedMediaType(WebhookError):
    code = "webhook/unsupported-media-type"
    title = "Webhook body must be application/json"
    status = 415


class PayloadTooLarge(WebhookError):
    code = "webhook/payload-too-large"
    title = "Webhook body too large"
    status = 413


class ReferenceMismatch(WebhookError):
    code = "webhook/reference-mismatch"
    title = "Reference already received with a different payload"
    status = 409


class WebhookNotConfigured(WebhookError):
    code = "webhook/not-configured"
    title = "Webhook verification key not configured"
    status = 503


class UnknownWebhookEvent(WebhookError):
    code = "webhook/unknown-event"
    title = "No such webhook event"
    status = 404


class DepositError(ApplicationError):
    code = "deposit/error"
    title = "Deposit refused"
    status = 400


class UnsupportedProvider(DepositError):
    code = "deposit/unsupported-provider"
    title = "Unsupported deposit provider"


class UnsupportedCurrency(DepositError):
    code = "deposit/unsupported-currency"
    title = "Currency not supported by this provider"


class DepositProviderFailed(DepositError):
    """The PSP refused or could not be reached; the deposit is already recorded as failed."""

    code = "deposit/provider-error"
    title = "Payment provider error"
    status = 502
