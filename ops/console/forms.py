"""The console's filter forms: every control has a label."""

from __future__ import annotations

from datetime import date

from django import forms

from .timeline import KINDS, TimelineFilter


class TimelineFilterForm(forms.Form):
    kind = forms.MultipleChoiceField(
        label="Kinds",
        choices=list(KINDS.items()),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked shows every kind.",
    )
    day_from = forms.DateField(label="From (UTC day)", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    day_to = forms.DateField(
        label="To (UTC day, inclusive)", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def timeline_filter(self) -> TimelineFilter:
        """The filter the form describes (everything when invalid or empty)."""
        if not self.is_valid():
            return TimelineFilter()
        kinds = frozenset(self.cleaned_data["kind"] or KINDS)
        return TimelineFilter(kinds=kinds, day_from=self.cleaned_data["day_from"], day_to=self.cleaned_data["day_to"])


class ReportDayForm(forms.Form):
    day = forms.DateField(label="Day (UTC)", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def day_or(self, default: date) -> date:
        return (self.cleaned_data.get("day") if self.is_valid() else None) or default
