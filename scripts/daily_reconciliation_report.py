#!/usr/bin/env python3
"""`python3 scripts/daily_reconciliation_report.py [args]`: the seeds' path for `python manage.py daily_reconciliation_report`."""

from _manage import run

if __name__ == "__main__":
    run("daily_reconciliation_report")
