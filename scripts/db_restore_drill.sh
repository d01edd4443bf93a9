#!/usr/bin/env bash
# `bash scripts/db_restore_drill.sh [backup|restore|all] [--dir DIR]` (or DB_RESTORE_DRILL_DIR): the backup/restore drill
# (`manage.py db_restore_drill`). Default `all`: the backup phase, then the restore phase into a scratch
# database, which is compared with the source and dropped. The configured database is never written.
# Red line: the restore phase never runs in production. With ENVIRONMENT=production, `all` runs the
# backup phase only and says so; an explicit `restore` is refused by the command.
set -euo pipefail
source "$(dirname "$0")/_python.sh"
phase=${1:-all}
[ $# -gt 0 ] && shift
# Snapshots go to --dir, else $DB_RESTORE_DRILL_DIR, else artifacts/backups (the command's default).
if [ -n "${DB_RESTORE_DRILL_DIR:-}" ]; then set -- --dir "$DB_RESTORE_DRILL_DIR" "$@"; fi
case "$phase" in
    backup|restore) exec "$PYTHON" "$ROOT/manage.py" db_restore_drill --phase "$phase" "$@" ;;
    all)
        "$PYTHON" "$ROOT/manage.py" db_restore_drill --phase backup "$@"
        environment=$("$PYTHON" "$ROOT/manage.py" shell --verbosity 0 -c "from django.conf import settings; print(settings.ENVIRONMENT)" | tail -n 1)
        if [ "$environment" = production ]; then
            echo "db_restore_drill: restore phase NOT run: ENVIRONMENT=production (red line). Run it on a scratch host."
            exit 0
        fi
        exec "$PYTHON" "$ROOT/manage.py" db_restore_drill --phase restore "$@"
        ;;
    *) echo "usage: bash scripts/db_restore_drill.sh [backup|restore|all] [--dir DIR]" >&2; exit 2 ;;
esac
