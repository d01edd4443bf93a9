#!/usr/bin/env python3
"""`python3 scripts/replay_psp_webhooks.py [args]`: the seeds' path for `python manage.py replay_psp_webhooks`."""

from _manage import run

if __name__ == "__main__":
    run("replay_psp_webhooks")
