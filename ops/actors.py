"""Who acts: a user (an operator, or a player on their own behalf) or a named system process.

Every business action takes its actor as an argument and records it. An actor is never a bare
string or None: a job is a `SystemActor` with a stable name (`beat`, `payout-worker`,
`webhook:stripe`), so the audit log always says who or what did it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from django.contrib.auth import get_user_model

from .errors import Forbidden, NotAPlayer

if TYPE_CHECKING:
    from accounts.models import User


@dataclass(frozen=True)
class SystemActor:
    """A named process acting on its own: beat, a worker, a PSP webhook, a bootstrap command."""

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise TypeError("A system actor needs a name.")

    def __str__(self) -> str:
        return self.name


Actor = Union["User", SystemActor]

BEAT = SystemActor("beat")
PAYOUT_WORKER = SystemActor("payout-worker")
SEED = SystemActor("seed")


def require_actor(actor: object) -> Actor:
    """Return the actor, or raise TypeError for anything that is not a saved user or a SystemActor."""
    if isinstance(actor, SystemActor):
        return actor
    if isinstance(actor, get_user_model()) and actor.pk is not None:
        return actor
    raise TypeError(f"An actor is a saved user or a SystemActor, not {type(actor).__name__} {actor!r}.")


def signed_in_user(user: object) -> User:
    """Return `request.user` as the signed-in user; an anonymous one is refused (Forbidden), never passed on.

    Views call it after their permission class let only signed-in users in, so the refusal is a backstop.
    """
    if not isinstance(user, get_user_model()) or not user.is_authenticated:
        raise Forbidden("Sign in first. Nothing was changed.")
    return user


def actor_user(actor: Actor) -> User | None:
    """Return the user behind an actor, or None for a system process."""
    checked = require_actor(actor)
    return None if isinstance(checked, SystemActor) else checked


def actor_label(actor: Actor) -> str:
    """Return a readable name for an actor: the user's email, or the process's name."""
    actor = require_actor(actor)
    return actor.name if isinstance(actor, SystemActor) else actor.email


def is_operator(actor: object) -> bool:
    """Return whether the actor is an active staff user."""
    user_model = get_user_model()
    return bool(isinstance(actor, user_model) and actor.pk is not None and actor.is_active and actor.is_staff)


def require_operator(actor: object, *, permission: str | None = None, what: str = "do this") -> User:
    """Return the actor if it is an active staff user holding `permission`; otherwise raise Forbidden."""
    checked = require_actor(actor)
    if isinstance(checked, SystemActor) or not is_operator(checked):
        raise Forbidden(f"Only an active operator may {what}; {_name(actor)} is not one. Nothing was changed.")
    if permission and not checked.has_perm(permission):
        raise Forbidden(f"{_name(actor)} may not {what} (needs {permission}). Nothing was changed.")
    return checked


def _name(actor: object) -> str:
    return actor.name if isinstance(actor, SystemActor) else getattr(actor, "email", repr(actor))


def require_player(user: object, *, active: bool = True) -> User:
    """Return the user if it is a player (not staff; active unless `active=False`); else raise NotAPlayer (403)."""
    checked = require_actor(user)
    if isinstance(checked, SystemActor) or checked.is_staff or checked.is_superuser:
        raise NotAPlayer(
            f"{_name(user)} is an operator account; operators hold no balance and cannot bet, deposit or "
            "withdraw. Nothing was changed."
        )
    if active and not checked.is_active:
        raise NotAPlayer(f"{_name(user)} is not active. Nothing was changed.")
    return checked
