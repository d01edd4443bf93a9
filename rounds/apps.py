"""The daily Up/Down round on the NASDAQ close."""

from django.apps import AppConfig


class RoundsConfig(AppConfig):
    name = "rounds"
    verbose_name = "Rounds"
