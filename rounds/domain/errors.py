"""Refusals of the round protocol's pure code: commitment, Merkle tree and reveal.

Named ``VerificationError`` (not ``IntegrityError``) so it never reads as ``django.db.IntegrityError``.
"""

from __future__ import annotations

__all__ = [
    "InvalidBetRecord",
    "InvalidCommitParams",
    "InvalidMerkleInput",
    "NotCanonical",
    "UnknownBet",
    "VerificationError",
]


class VerificationError(ValueError):
    """Base class of the round protocol's input errors."""


class NotCanonical(VerificationError):
    """A value has no canonical form in the protocol: a float in JSON, a naive instant, a non-finite price."""


class InvalidCommitParams(VerificationError):
    """Commit parameters are missing, extra or not in canonical form."""


class InvalidBetRecord(VerificationError):
    """A bet record is malformed or its bet_id is duplicated."""


class UnknownBet(InvalidBetRecord):
    """An inclusion proof was asked for a bet_id that is not among the bets."""


class InvalidMerkleInput(VerificationError):
    """A leaf is not a 32-byte hash or a proof index is out of range."""
