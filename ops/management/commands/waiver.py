"""`waiver add|list|escalate|close`: the production-environment waiver register."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from ops.audit import audit_record
from ops.cli import operator_from_option
from ops.models import Waiver
from ops.prod_env import CHECKS
from ops.waivers import waivers_escalate_overdue


class Command(BaseCommand):
    help = "Manage waivers for verify_prod_env checks: add, list, escalate overdue ones, close."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add")
        add.add_argument("--check", required=True, choices=[name for name, _ in CHECKS])
        add.add_argument("--ticket", required=True)
        add.add_argument("--risk", required=True, choices=Waiver.Risk.values)
        add.add_argument("--owner", required=True)
        add.add_argument("--deadline", required=True, help="YYYY-MM-DD (UTC end of day)")
        add.add_argument("--reason", required=True)
        sub.add_parser("list")
        sub.add_parser("escalate")
        close = sub.add_parser("close")
        close.add_argument("id", type=int)
        close.add_argument("--reason", required=True)
        for p in (add, close):
            p.add_argument("--operator")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"_{options['action']}")(options)

    def _add(self, options: dict[str, Any]) -> None:
        """Record a waiver and its audit row together; a deadline already past is refused (it would be overdue
        at once, and a waiver is a promise to fix by a date still ahead)."""
        try:
            day = datetime.strptime(options["deadline"], "%Y-%m-%d").replace(hour=23, minute=59, second=59, tzinfo=UTC)
        except ValueError as exc:
            raise CommandError(f"--deadline must be YYYY-MM-DD, not {options['deadline']!r}.") from exc
        now = timezone.now()
        if day < now:
            raise CommandError(
                f"--deadline {options['deadline']} has passed (it ends {day:%Y-%m-%d %H:%M:%S} UTC; now "
                f"{now:%Y-%m-%d %H:%M} UTC): give a day from today on. Nothing was recorded."
            )
        actor = operator_from_option(options.get("operator"))
        with transaction.atomic():
            waiver = Waiver.objects.create(
                check_name=options["check"],
                ticket=options["ticket"],
                risk=options["risk"],
                owner=options["owner"],
                reason=options["reason"],
                deadline=day,
            )
            audit_record(
                actor=actor,
                action="ops.waiver.add",
                obj=waiver,
                reason=options["reason"],
                data={"check": waiver.check_name, "risk": waiver.risk},
            )
        self.stdout.write(f"waiver {waiver.pk}: {waiver}")

    def _list(self, options: dict[str, Any]) -> None:
        now = timezone.now()
        for w in Waiver.objects.filter(closed_at__isnull=True).order_by("deadline"):
            state = "OVERDUE" if w.deadline < now else "open"
            escalated = f" escalated {w.escalated_at:%Y-%m-%d}" if w.escalated_at else ""
            self.stdout.write(
                f"{w.pk:>4} {state:<7} {w.risk:<6} {w.check_name} {w.ticket} owner={w.owner} "
                f"deadline={w.deadline:%Y-%m-%d}{escalated}"
            )

    def _escalate(self, options: dict[str, Any]) -> None:
        for waiver in waivers_escalate_overdue():
            self.stdout.write(f"ESCALATED waiver {waiver.pk}: {waiver} (owner {waiver.owner}, ticket {waiver.ticket})")

    def _close(self, options: dict[str, Any]) -> None:
        waiver = Waiver.objects.filter(pk=options["id"], closed_at__isnull=True).first()
        if waiver is None:
            raise CommandError(f"No open waiver {options['id']}.")
        waiver.closed_at = timezone.now()
        waiver.save(update_fields=["closed_at"])
        audit_record(
            actor=operator_from_option(options.get("operator")),
            action="ops.waiver.close",
            obj=waiver,
            reason=options["reason"],
        )
        self.stdout.write(f"closed waiver {waiver.pk}")
