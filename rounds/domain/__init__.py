"""Pure-Python domain core for the daily Up/Down round (no Django imports).

Modules:
    calendar  -- XNYS session schedule: open, close, lock and settle instants.
    pool      -- integer parimutuel pool settlement (the reference implementation).
    integrity -- canonical JSON, commit hashes, Merkle trees and reveal verification.
    oracle    -- closing-price sources and the two-source agreement rule.
"""
