"""The query parameters of the dashboard and the Insights page, as forms.

A link is shared, bookmarked and edited by hand: a value a page does not know (``?days=²``,
``?sort=nope``) falls back to that parameter's default instead of failing the page, and the
others keep theirs. The views read :meth:`QueryParams.values`, never ``request.GET``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.http import QueryDict

#: The periods the pages offer, in days; the first is the default.
PERIODS = (30, 7, 90)
#: Columns an Insights table can be sorted by (the row attribute), and whether descending
#: comes first.
SORTS = {
    "key": False,
    "sent": True,
    "delivered": True,
    "converted": True,
    "rate": True,
    "median_seconds_to_convert": True,
    "p90_seconds_to_convert": True,
}
#: What the Insights page can chart one destination of.
CHART_BY = ("country", "network")


def _choices(values: Any) -> list[tuple[str, str]]:
    return [(str(value), str(value)) for value in values]


class QueryParams(forms.Form):
    """A page's query parameters; each invalid or missing one takes its default."""

    #: Each field's value when it is missing or invalid.
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, query: QueryDict) -> None:
        # Only the fields this form knows: other parameters (the admin's own) are ignored.
        super().__init__({name: query[name] for name in self.base_fields if name in query})

    def values(self) -> dict[str, Any]:
        """Every field's clean value, or its default."""
        self.is_valid()
        cleaned = getattr(self, "cleaned_data", {})
        return {
            name: cleaned[name]
            if name in cleaned and name not in self.errors and cleaned[name] not in (None, "")
            else default
            for name, default in self.defaults.items()
        }


class DashboardParams(QueryParams):
    """``?days=30`` (7, 30 or 90): the period of the rate chart."""

    days = forms.TypedChoiceField(choices=_choices(PERIODS), coerce=int, required=False)

    defaults: ClassVar[dict[str, Any]] = {"days": PERIODS[0]}


class InsightsParams(QueryParams):
    """``?days=`` (the period), ``?sort=`` / ``?dir=`` (the tables' order) and
    ``?chart=country:GB`` (the destination charted)."""

    days = forms.TypedChoiceField(choices=_choices(PERIODS), coerce=int, required=False)
    sort = forms.ChoiceField(choices=_choices(SORTS), required=False)
    dir = forms.ChoiceField(choices=_choices(("asc", "desc")), required=False)
    chart = forms.RegexField(
        regex=rf"^({'|'.join(CHART_BY)}):[A-Za-z0-9]{{1,16}}$", required=False, max_length=32
    )

    defaults: ClassVar[dict[str, Any]] = {
        "days": PERIODS[0],
        "sort": "sent",
        "dir": None,
        "chart": "",
    }

    def values(self) -> dict[str, Any]:
        found = super().values()
        if found["dir"] is None:  # each column has its own first direction
            found["dir"] = "desc" if SORTS[found["sort"]] else "asc"
        return found
