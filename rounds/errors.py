"""Refusals of the rounds app. Each leaves rounds, bets and the ledger exactly as they were."""

from ops.errors import ApplicationError


class RoundError(ApplicationError):
    code = "rounds/error"
    title = "Round refused the request"
    status = 400


class RoundNotFound(RoundError):
    code = "rounds/not-found"
    title = "No such round"
    status = 404


class InvalidRoundCode(RoundError):
    code = "rounds/invalid-code"
    title = "Round code must be a date YYYYMMDD"


class NotASession(RoundError):
    code = "rounds/not-a-session"
    title = "Not an XNYS trading session"
    status = 422


class RoundTooLate(RoundError):
    code = "rounds/too-late"
    title = "The round's lock time has passed"
    status = 409


class ReferenceUnavailable(RoundError):
    code = "rounds/reference-unavailable"
    title = "The previous session's close is not known yet"
    status = 409


class ReferenceNotFinal(ReferenceUnavailable):
    code = "rounds/reference-not-final"
    title = "The previous session has not closed yet; its close cannot be this round's reference"
    status = 409


class RoundLocked(RoundError):
    code = "rounds/locked"
    title = "The round is not taking bets"
    status = 409


class BettingPaused(RoundError):
    code = "rounds/betting-paused"
    title = "Betting is paused"
    status = 503


class InvalidBet(RoundError):
    code = "rounds/invalid-bet"
    title = "Invalid bet"


class StakeTooSmall(RoundError):
    code = "rounds/stake-too-small"
    title = "Stake below the round's minimum"
    status = 422


class AlreadyBet(RoundError):
    code = "rounds/already-bet"
    title = "One bet per player per round"
    status = 409


class RoundNotLocked(RoundError):
    code = "rounds/not-locked"
    title = "The round is not locked"
    status = 409


class SettleTooEarly(RoundError):
    code = "rounds/too-early"
    title = "Too early to settle"
    status = 409


class MarketNotClosed(RoundError):
    code = "rounds/market-not-closed"
    title = "The round's session has not closed; its closing price is not known yet"
    status = 409


class OraclePending(RoundError):
    code = "rounds/oracle-pending"
    title = "No agreed closing price yet; retried until the deadline"
    status = 409


class ReasonRequired(RoundError):
    code = "rounds/reason-required"
    title = "A reason is required"


class InvalidPrice(RoundError):
    code = "rounds/invalid-price"
    title = "Invalid price"


class PriceAlreadyEntered(RoundError):
    code = "rounds/price-already-entered"
    title = "This operator already entered a price for this round"
    status = 409


class BetNotFound(RoundError):
    code = "rounds/bet-not-found"
    title = "No such bet"
    status = 404


class ProofNotReady(RoundError):
    code = "rounds/proof-not-ready"
    title = "Proofs exist once the round is locked"
    status = 409


class SettlementMismatch(RoundError):
    code = "rounds/settlement-mismatch"
    title = "Settlement failed its conservation check; nothing moved"
    status = 500


class RoundAlreadySettled(RoundError):
    code = "rounds/already-settled"
    title = "Round already settled"
    status = 409


class InvalidResult(RoundError):
    code = "rounds/invalid-result"
    title = "Invalid result"
    status = 400


class ProofMismatch(RoundError):
    code = "rounds/proof-mismatch"
    title = "The round's Merkle tree or a proof from it disagrees with the root; nothing is served or stored"
    status = 500


class RoundAlreadyOpen(RoundError):
    code = "rounds/already-open"
    title = "This round is already open; its reference is fixed"
    status = 409
