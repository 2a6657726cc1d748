"""The dashboard's conversion-rate chart, drawn on the server as inline SVG."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils import formats
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

from ..queries import DayRate

# Inline SVG with no JavaScript and nothing fetched from elsewhere, so the page works offline
# and behind a strict Content-Security-Policy. Colours come from CSS classes
# (``static/django_nexmo_conversion/admin.css``), so the chart follows the admin's light and
# dark themes. Every day carries a ``<title>`` (a native tooltip) with its exact numbers.

#: Gridlines, as fractions of 100 %.
GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
#: Label every n-th day on the x axis, counted back from today (which is always labelled).
LABEL_EVERY = 7


@dataclass(frozen=True)
class PlotArea:
    """Where the plot area sits inside the SVG's view box."""

    width: float
    height: float
    left: float = 44.0
    #: Room for the period's rate, written right of the plot at the end of its line.
    right: float = 58.0
    top: float = 14.0
    bottom: float = 30.0

    @property
    def inner_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def inner_height(self) -> float:
        return self.height - self.top - self.bottom

    @property
    def baseline(self) -> float:
        return self.top + self.inner_height

    def y(self, fraction: float) -> float:
        return self.baseline - fraction * self.inner_height


def percent(fraction: float, *, digits: int = 1) -> str:
    """``0.375`` -> ``"37.5 %"`` in the active locale's number format."""
    if fraction in (0.0, 1.0):
        digits = 0
    return f"{formats.number_format(fraction * 100, digits)}\u00a0%"


def _day_label(day: DayRate) -> str:
    return formats.date_format(day.day, "D j M")


def _tooltip(day: DayRate) -> str:
    label = _day_label(day)
    if day.rate is None:
        return str(_("%(day)s: no messages sent") % {"day": label})
    text = ngettext_lazy(
        "%(day)s: %(converted)s of %(sent)s message converted (%(rate)s)",
        "%(day)s: %(converted)s of %(sent)s messages converted (%(rate)s)",
        "sent",
    )
    return str(
        text
        % {
            "day": label,
            "converted": formats.number_format(day.converted),
            "sent": day.sent,
            "rate": percent(day.rate),
        }
    )


def _num(value: float) -> str:
    """Coordinates with at most two decimals: smaller markup, same picture."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def overall_rate(days: Sequence[DayRate]) -> float | None:
    """Converted / sent over all the days (a weighted mean, not a mean of daily rates)."""
    sent = sum(day.sent for day in days)
    return sum(day.converted for day in days) / sent if sent else None


def rate_chart(days: Sequence[DayRate], *, width: int = 760, height: int = 240) -> SafeString:
    """An SVG bar chart of ``days`` (oldest first): one bar per day, height = conversion rate,
    with a dashed line at the rate over the whole period."""
    plot = PlotArea(width=width, height=height)
    title = escape(_("Conversion rate per day"))
    average = overall_rate(days)
    if average is None:
        description = str(_("No messages were sent in this period."))
    else:
        description = _("Over the whole period: %(rate)s.") % {"rate": percent(average)}
    parts: list[str] = [
        f'<svg class="nexmo-chart" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" role="img" '
        'aria-labelledby="nexmo-chart-title nexmo-chart-desc" '
        'preserveAspectRatio="xMidYMid meet">',
        f'<title id="nexmo-chart-title">{title}</title>',
        f'<desc id="nexmo-chart-desc">{escape(description)}</desc>',
    ]

    for fraction in GRID:
        y = _num(plot.y(fraction))
        tick = escape(percent(fraction, digits=0))
        parts.append(
            f'<line class="nexmo-chart__grid" x1="{_num(plot.left)}" '
            f'x2="{_num(width - plot.right)}" y1="{y}" y2="{y}"/>'
            f'<text class="nexmo-chart__axis" x="{_num(plot.left - 6)}" y="{y}" '
            f'text-anchor="end" dominant-baseline="middle">{tick}</text>'
        )

    slot = plot.inner_width / max(len(days), 1)
    bar_width = max(slot * 0.72, 1.0)
    last = len(days) - 1
    for index, day in enumerate(days):
        x = plot.left + index * slot
        bar_x = x + (slot - bar_width) / 2
        shapes = [
            # A full-height transparent target, so even a short bar is easy to hover.
            f'<rect class="nexmo-chart__hit" x="{_num(x)}" y="{_num(plot.top)}" '
            f'width="{_num(slot)}" height="{_num(plot.inner_height)}"/>'
        ]
        if day.rate is None:
            shapes.append(
                f'<line class="nexmo-chart__empty" x1="{_num(bar_x)}" '
                f'x2="{_num(bar_x + bar_width)}" y1="{_num(plot.baseline - 1)}" '
                f'y2="{_num(plot.baseline - 1)}"/>'
            )
        else:
            # A 0 % day still gets a sliver, to tell it apart from a day with no sends.
            bar_height = max(day.rate * plot.inner_height, 1.5)
            shapes.append(
                f'<rect class="nexmo-chart__bar" x="{_num(bar_x)}" '
                f'y="{_num(plot.baseline - bar_height)}" width="{_num(bar_width)}" '
                f'height="{_num(bar_height)}" rx="1.5"/>'
            )
        parts.append(
            f'<g class="nexmo-chart__day" data-day="{day.day.isoformat()}" '
            f'data-sent="{day.sent}" data-converted="{day.converted}">'
            f"<title>{escape(_tooltip(day))}</title>{''.join(shapes)}</g>"
        )
        if (last - index) % LABEL_EVERY == 0:
            parts.append(
                f'<text class="nexmo-chart__axis" x="{_num(x + slot / 2)}" '
                f'y="{_num(plot.baseline + 18)}" text-anchor="middle">'
                f"{escape(formats.date_format(day.day, 'j M'))}</text>"
            )

    if average is not None:
        y = _num(plot.y(average))
        parts.append(
            f'<g class="nexmo-chart__average"><title>{escape(description)}</title>'
            f'<line x1="{_num(plot.left)}" x2="{_num(width - plot.right + 2)}" '
            f'y1="{y}" y2="{y}"/>'
            f'<text x="{_num(width - plot.right + 6)}" y="{y}" dominant-baseline="middle">'
            f"{escape(percent(average))}</text></g>"
        )
    parts.append("</svg>")
    # Every piece of text above went through escape(); the rest is our own markup and numbers.
    return mark_safe("".join(parts))  # noqa: S308
