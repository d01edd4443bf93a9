#!/usr/bin/env python3
"""`python3 scripts/verify_prod_env.py [args]`: the seeds' path for `python manage.py verify_prod_env`."""

from _manage import run

if __name__ == "__main__":
    run("verify_prod_env")
