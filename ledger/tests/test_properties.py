"""Property-based: random postings, transfers, reversals and replays, valid and invalid.

After every step the ledger invariants hold, the stored balances equal a model kept in Python, and
every refused operation changed nothing.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from accounts.tests.factories import UserFactory
from ledger import services
from ledger.errors import LedgerError
from ledger.models import Account, Entry, Journal
from ledger.reconciliation import ledger_breaches
from ledger.services import Leg
from ops.actors import SystemActor

_run = itertools.count()
AMOUNTS = st.one_of(
    st.integers(min_value=1, max_value=5_000),
    st.sampled_from([0, -1, -250, 10**18, 2.5, "7", True, None]),
)


class LedgerMachine(RuleBasedStateMachine):
    """A few accounts, random operations on them, and a model of what their balances must be."""

    def __init__(self) -> None:
        super().__init__()
        run = next(_run)
        players = [UserFactory.create(email=f"prop{run}-{i}@example.com") for i in range(3)]
        self.accounts = [services.user_account(user=p, currency="USDC") for p in players]
        self.accounts.append(
            services.account_get_or_create(name=f"house-prop-{run}", currency="USDC", kind=Account.Kind.HOUSE)
        )
        self.external = services.account_get_or_create(
            name=f"psp:prop-{run}", currency="USDC", kind=Account.Kind.EXTERNAL, allow_negative=True
        )
        self.accounts.append(self.external)
        self.model = {a.pk: 0 for a in self.accounts}
        self.posted: list[tuple[str, list[tuple[int, int]], str]] = []
        self.refs = itertools.count()
        self.prefix = f"prop{run}"

    def _snapshot(self) -> tuple:
        ids = [a.pk for a in self.accounts]
        balances = tuple(Account.objects.filter(pk__in=ids).order_by("pk").values_list("balance_u", flat=True))
        return balances, Journal.objects.count(), Entry.objects.count()

    def _attempt(self, post: Any, legs: list[tuple[int, Any]]) -> None:
        """Run one posting; if refused, assert nothing changed; if accepted, update the model."""
        before = self._snapshot()
        try:
            journal = post()
        except LedgerError:
            assert self._snapshot() == before
            return
        if not journal.replayed:
            for account_id, amount in legs:
                self.model[account_id] += amount
            self.posted.append((journal.reference, legs, journal.type))
        else:
            assert self._snapshot() == before

    def _new_ref(self) -> str:
        return f"{self.prefix}-{next(self.refs)}"

    @rule(src=st.integers(0, 4), dst=st.integers(0, 4), amount=AMOUNTS)
    def transfer(self, src: int, dst: int, amount: Any) -> None:
        a, b = self.accounts[src], self.accounts[dst]
        legs = [(a.pk, -amount), (b.pk, amount)] if isinstance(amount, int) else []
        self._attempt(
            lambda: services.transfer(
                source=a, destination=b, amount_u=amount, type="t", reference=self._new_ref(), actor=SystemActor("test")
            ),
            legs,
        )

    @rule(amount=st.integers(1, 10_000))
    def deposit(self, amount: int) -> None:
        player = self.accounts[0]
        self._attempt(
            lambda: services.transfer(
                source=self.external,
                destination=player,
                amount_u=amount,
                type="deposit",
                reference=self._new_ref(),
                actor=SystemActor("test"),
            ),
            [(self.external.pk, -amount), (player.pk, amount)],
        )

    @rule(
        amounts=st.lists(st.tuples(st.integers(0, 4), st.integers(-3_000, 3_000)), min_size=1, max_size=5),
        balance=st.booleans(),
    )
    def multi_leg(self, amounts: list[tuple[int, int]], balance: bool) -> None:
        legs = [(self.accounts[i].pk, amt) for i, amt in amounts]
        if balance:
            legs.append((self.external.pk, -sum(amt for _, amt in legs) or 1))
        self._attempt(
            lambda: services.journal_post(
                type="multi",
                reference=self._new_ref(),
                legs=[Leg(Account.objects.get(pk=pk), amt) for pk, amt in legs],
                actor=SystemActor("test"),
            ),
            legs,
        )

    @precondition(lambda self: bool(self.posted))
    @rule(data=st.data())
    def reverse(self, data: Any) -> None:
        reference, legs, _type = data.draw(st.sampled_from(self.posted))
        journal = Journal.objects.get(reference=reference)
        self._attempt(
            lambda: services.journal_reverse(
                journal=journal, reference=self._new_ref(), actor=SystemActor("test"), reason="undo"
            ),
            [(pk, -amt) for pk, amt in legs],
        )

    @precondition(lambda self: bool(self.posted))
    @rule(data=st.data(), tamper=st.booleans())
    def replay(self, data: Any, tamper: bool) -> None:
        reference, legs, journal_type = data.draw(st.sampled_from(self.posted))
        if len(legs) != 2:
            return
        (src, amount_out), (dst, _amount_in) = legs
        amount = -amount_out + (1 if tamper else 0)
        if amount <= 0:
            return
        before = self._snapshot()
        source, destination = Account.objects.get(pk=src), Account.objects.get(pk=dst)
        try:
            journal = services.transfer(
                source=source,
                destination=destination,
                amount_u=amount,
                type=journal_type,
                reference=reference,
                actor=SystemActor("test"),
            )
            assert not tamper and journal.replayed
        except LedgerError:
            assert tamper or journal_type != "t"
        assert self._snapshot() == before

    @invariant()
    def balances_match_model(self) -> None:
        stored = dict(Account.objects.filter(pk__in=self.model).values_list("pk", "balance_u"))
        assert stored == self.model

    @invariant()
    def ledger_invariants_hold(self) -> None:
        assert ledger_breaches() == []


@pytest.mark.django_db
def test_random_postings_keep_every_invariant() -> None:
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
