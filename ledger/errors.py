"""Ledger refusals. Each leaves the ledger exactly as it was."""

from ops.errors import ApplicationError


class LedgerError(ApplicationError):
    code = "ledger/error"
    title = "Ledger refused the posting"
    status = 400


class InvalidAmount(LedgerError):
    code = "ledger/invalid-amount"
    title = "Invalid amount"


class InvalidReference(LedgerError):
    code = "ledger/invalid-reference"
    title = "Invalid reference"


class InvalidAccount(LedgerError):
    code = "ledger/invalid-account"
    title = "Invalid account"


class ReasonRequired(LedgerError):
    code = "ledger/reason-required"
    title = "A reason is required"


class UnknownCurrency(LedgerError):
    code = "ledger/unknown-currency"
    title = "Unknown currency"


class CurrencyMismatch(LedgerError):
    code = "ledger/currency-mismatch"
    title = "Account and amount are in different currencies"


class UnbalancedJournal(LedgerError):
    code = "ledger/unbalanced"
    title = "Journal does not balance"


class InsufficientFunds(LedgerError):
    code = "ledger/insufficient-funds"
    title = "Insufficient funds"
    status = 422


class ReferenceConflict(LedgerError):
    code = "ledger/reference-conflict"
    title = "Reference already used for a different posting"
    status = 409


class AlreadyReversed(LedgerError):
    code = "ledger/already-reversed"
    title = "Journal already reversed"
    status = 409
