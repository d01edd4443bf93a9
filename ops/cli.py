"""Helpers shared by management commands: who is acting, finding users, refusals as one line."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from .actors import Actor, SystemActor
from .approvals import decision_approve, decision_reject
from .command_lock import command_lock
from .errors import ApplicationError
from .models import Proposal

if TYPE_CHECKING:
    from accounts.models import User


def operator_by_email(email: str | None) -> User:
    """Return the active operator named by --operator, or raise a one-line CommandError."""
    if not email or not email.strip():
        raise CommandError("--operator is required: the email of the operator taking this decision.")
    user = get_user_model().objects.filter(email=email.strip().lower()).first()
    if user is None:
        raise CommandError(f"No user with email {email!r}.")
    if not user.is_staff or not user.is_active:
        raise CommandError(f"{user.email} is not an active operator.")
    return user


def operator_from_option(email: str | None) -> Actor:
    """Return the operator named by --operator, or a system actor for the OS user running the command.

    For commands that move no money by hand (open/lock a round, switches, replays). Manual money
    decisions use `operator_by_email`, which requires a named operator.
    """
    if email:
        return operator_by_email(email)
    try:
        return SystemActor(f"cli:{getpass.getuser()}")
    except Exception:
        return SystemActor("cli:unknown")


def user_by_email(email: str) -> User:
    """Return the user with this email or raise a one-line CommandError."""
    user = get_user_model().objects.filter(email=(email or "").strip().lower()).first()
    if user is None:
        raise CommandError(f"No user with email {email!r}.")
    return user


def refusal_line(exc: ApplicationError) -> str:
    """Return a service's refusal as the one line a command prints: `refused: <code>: <detail>`."""
    return f"refused: {exc.code}: {exc.detail}"


@contextmanager
def refusals_as_command_errors() -> Iterator[None]:
    """Turn a service's refusal into a one-line CommandError (`refusal_line`, non-zero exit)."""
    try:
        yield
    except ApplicationError as exc:
        raise CommandError(refusal_line(exc)) from exc


def proposal_decide(
    *, approve: int | None, reject: int | None, kind: str, operator_email: str | None, reason: str
) -> tuple[Proposal, User]:
    """Approve or reject a proposal of one kind for `--approve ID` / `--reject ID`; refusals are one line."""
    operator = operator_by_email(operator_email)
    proposal_id = approve if approve is not None else reject
    if proposal_id is None:
        raise CommandError("Give --approve ID or --reject ID.")
    found = Proposal.objects.filter(pk=proposal_id).values_list("kind", flat=True).first()
    if found != kind:
        raise CommandError(f"No {kind} proposal {proposal_id}.")
    with command_lock(kind), refusals_as_command_errors():
        if approve is not None:
            return decision_approve(proposal_id=proposal_id, acting_user=operator, reason=reason), operator
        return decision_reject(proposal_id=proposal_id, acting_user=operator, reason=reason), operator
