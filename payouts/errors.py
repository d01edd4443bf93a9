"""Payout refusals: each has a stable code and HTTP status, and leaves everything as it was."""

from ops.errors import ApplicationError


class PayoutError(ApplicationError):
    code = "payouts/error"
    title = "Withdrawal refused"
    status = 400


class InvalidWithdrawal(PayoutError):
    code = "payouts/invalid-withdrawal"
    title = "Invalid withdrawal request"
    status = 400


class UnknownProvider(PayoutError):
    code = "payouts/unknown-provider"
    title = "Unknown payout provider"
    status = 400


class WithdrawalNotFound(PayoutError):
    code = "payouts/not-found"
    title = "Withdrawal not found"
    status = 404


class InvalidTransition(PayoutError):
    code = "payouts/invalid-transition"
    title = "This action is not possible in the withdrawal's current state"
    status = 409


class PspAnswerPending(InvalidTransition):
    code = "payouts/psp-answer-pending"
    title = "The PSP's latest answer is not final: the payout cannot be resolved by hand yet"
    status = 409


class TransitionForbidden(PayoutError):
    code = "payouts/forbidden"
    title = "You may not take this action on this withdrawal"
    status = 403


class ReasonRequired(PayoutError):
    code = "payouts/reason-required"
    title = "A reason is required"
    status = 400


class SecondOperatorRequired(PayoutError):
    code = "payouts/second-operator-required"
    title = "A second, different operator must confirm this action"
    status = 409


class ConcurrentAction(PayoutError):
    code = "payouts/concurrent-action"
    title = "Another operator changed this withdrawal at the same time"
    status = 409


class InvalidWebhook(PayoutError):
    code = "payouts/invalid-webhook"
    title = "Webhook rejected"
    status = 400


class WebhookTooLarge(PayoutError):
    code = "payouts/webhook-too-large"
    title = "Webhook body too large"
    status = 413


class InvalidDestination(PayoutError):
    code = "payouts/invalid-destination"
    title = "Invalid withdrawal destination"
    status = 400
