"""Operations: the error contract, idempotency, audit records, switches, health and metrics."""

from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Operations"
    # The application database role's privileges on the audit tables: append, read (ops.db_roles).
    db_privileges = {"audit_log": ("SELECT", "INSERT"), "auditlog_logentry": ("SELECT", "INSERT")}

    def ready(self) -> None:
        from . import checks, ops_metrics  # noqa: F401  (deploy checks; registers worker_runs_total)
        from .metrics import install_database_collector

        install_database_collector()

        from .auditlog_setup import register_models
        from .switches import register_switch_decisions
        from .tracing import connect_flow_signals, sentry_init, tracing_init

        register_models()
        register_switch_decisions()
        connect_flow_signals()
        tracing_init()
        sentry_init()
