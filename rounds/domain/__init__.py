"""Pure-Python domain core for the daily Up/Down round (no Django imports).

Modules:
    calendar   -- XNYS session schedule: open, close, lock and settle instants.
    pool       -- integer parimutuel pool settlement (the reference implementation).
    commitment -- canonical values, the committed parameters and their hash (at open).
    merkle     -- bet leaves, the RFC 6962 Merkle tree and inclusion proofs (at lock).
    reveal     -- the reveal at settlement and its independent verification.
    errors     -- the protocol's refusals (VerificationError and its subclasses).
    oracle     -- closing-price sources and the two-source agreement rule.
"""
