#!/usr/bin/env python3
"""`python3 scripts/detect_stuck_finance_jobs.py [args]`: the seeds' path for `python manage.py detect_stuck_finance_jobs`."""

from _manage import run

if __name__ == "__main__":
    run("detect_stuck_finance_jobs")
