"""The Celery app: tasks are discovered in each local app's tasks.py."""

import os

from celery import Celery
from celery.signals import task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("backoffice")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def _bind_correlation_id(task_id=None, task=None, **_kwargs):
    """Give every job run its own correlation id in the logs."""
    from ops.logging import set_correlation_id

    set_correlation_id(f"task-{task_id}")
