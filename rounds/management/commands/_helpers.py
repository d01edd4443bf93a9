"""Shared by the rounds commands (kept for their imports): see `ops.cli.refusals_as_command_errors`."""

from ops.cli import refusals_as_command_errors

__all__ = ["refusals_as_command_errors"]
