"""On-chain refusals, in the project's one error contract."""

from ops.errors import ApplicationError


class ChainError(ApplicationError):
    code = "chain/error"
    title = "On-chain request refused"
    status = 400


class ChainNotConfigured(ChainError):
    code = "chain/not-configured"
    title = "The on-chain rail is not configured"
    status = 503


class ChainNotOffered(ChainError):
    code = "chain/not-offered"
    title = "On-chain USDC is not offered here"
    status = 404


class InvalidChainAddress(ChainError):
    code = "chain/invalid-address"
    title = "Invalid on-chain address"
    status = 400


class ChainCurrencyNotSupported(ChainError):
    code = "chain/unsupported-currency"
    title = "The on-chain rail does not pay this currency"
    status = 400


class ReasonRequired(ChainError):
    code = "chain/reason-required"
    title = "A reason is required"
    status = 400


class ChainTransferNotFound(ChainError):
    code = "chain/transfer-not-found"
    title = "On-chain transfer not found"
    status = 404


class ReplacementRefused(ChainError):
    code = "chain/replacement-refused"
    title = "This transaction cannot be replaced"
    status = 409
