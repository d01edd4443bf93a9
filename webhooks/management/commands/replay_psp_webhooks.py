"""`replay_psp_webhooks --event-id <id>` / `--failed`: re-process stored PSP webhook events.

The ops handbook's step for PSP webhook failures. Idempotent: replaying a processed event credits
nothing more. `--event-id` takes our event number or the provider's event id (`evt_...`).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ops.cli import operator_from_option, refusal_line
from ops.command_lock import command_lock
from ops.errors import ApplicationError
from webhooks.models import WebhookEvent
from webhooks.processing import webhook_event_replay
from webhooks.selectors import webhook_event_find, webhook_events_failed


class Command(BaseCommand):
    help = "Replay stored PSP webhook events (idempotent): one by --event-id, or every failed one with --failed."

    def add_arguments(self, parser: Any) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--event-id", help="our event number, or the provider's event id")
        target.add_argument("--failed", action="store_true", help="replay every event marked failed")
        parser.add_argument("--provider", help="with a provider event id: stripe, adyen, custody")
        parser.add_argument("--operator", help="the operator's email (recorded as the actor)")
        parser.add_argument("--reason", default="replay_psp_webhooks", help="kept in the audit log")
        parser.add_argument("--dry-run", action="store_true", help="list what would be replayed; change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["failed"]:
            events = list(webhook_events_failed())
        else:
            events = webhook_event_find(identifier=str(options["event_id"]).strip(), provider=options["provider"])
            if not events:
                raise CommandError(f"No webhook event with id {options['event_id']!r}.")
            if len(events) > 1:
                raise CommandError(
                    f"{len(events)} events have id {options['event_id']!r}; add --provider or use our event number."
                )
        if options["dry_run"]:
            for event in events:
                self.stdout.write(
                    f"dry run: would replay event {event.pk} {event.provider}:{event.event_id} ({event.status})"
                )
            self.stdout.write(f"dry run: {len(events)} event(s)")
            return
        actor = operator_from_option(options["operator"])
        problems = 0
        with command_lock("replay_psp_webhooks"):
            for event in events:
                problems += self._replay(event, actor, options["reason"])
        self.stdout.write(f"replayed {len(events)} event(s), {problems} still need attention")
        if problems and not options["failed"]:
            raise CommandError(f"event {events[0].pk} still needs attention")

    def _replay(self, event: WebhookEvent, actor: Any, reason: str) -> int:
        done = (WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED)
        if event.status in done:
            self.stdout.write(
                f"event {event.pk} {event.provider}:{event.event_id}: already {event.status}; nothing done"
            )
            return 0
        try:
            result = webhook_event_replay(event_id=event.pk, acting_user=actor, reason=reason)
        except ApplicationError as exc:
            self.stderr.write(f"event {event.pk}: {refusal_line(exc)}")
            return 1
        except Exception as exc:  # noqa: BLE001 (one readable line per event, keep going)
            self.stderr.write(f"event {event.pk}: {type(exc).__name__}: {exc}")
            return 1
        self.stdout.write(f"event {result.pk} {result.provider}:{result.event_id}: {result.status}. {result.reason}")
        return 0 if result.status in (WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED) else 1
