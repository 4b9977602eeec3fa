"""The admin index's dashboard: growth per newsletter, new and lost per day, latest sends.

Charts are SVG drawn here on the server (no script, nothing from another host).
Each newsletter gets a chart of its own with its own labelled y axis, so a list of
twelve reads as clearly as one of twelve thousand; every chart also has its
numbers in a table for screen readers and for copying.
"""

from datetime import date
from typing import Any

from django import template

from signalpost.charts import axis_ticks
from signalpost.publishing.selectors import (
    sends_latest,
    subscriber_growth_recent,
    subscribers_new_and_lost_recent,
)

register = template.Library()

# One small chart: the plot area sits inside margins that hold the axes' labels.
WIDTH = 320
HEIGHT = 170
LEFT = 48
RIGHT = 10
TOP = 12
BOTTOM = 40
COLOURS = ["#0b5cad", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207"]
NEW_COLOUR = "#15803d"
LOST_COLOUR = "#b91c1c"


def _x_positions(dates: list[date]) -> list[float]:
    step = (WIDTH - LEFT - RIGHT) / max(1, len(dates) - 1)
    return [LEFT + index * step for index in range(len(dates))]


def _y_scale(top: int, *, bottom: float = HEIGHT - BOTTOM, height: float | None = None):
    plot = height if height is not None else HEIGHT - TOP - BOTTOM
    return lambda value: bottom - (value / top) * plot


def _date_labels(dates: list[date], xs: list[float]) -> list[dict[str, Any]]:
    """First, middle and last date, anchored so none leaves the chart."""
    if not dates:
        return []
    picks = sorted({0, len(dates) // 2, len(dates) - 1})
    anchors = {0: "start", len(dates) - 1: "end"}
    return [
        {
            "x": f"{xs[i]:.1f}",
            "text": dates[i].strftime("%-d %b"),
            "anchor": anchors.get(i, "middle"),
        }
        for i in picks
    ]


def growth_chart(dates: list[date], counts: list[int], *, colour: str, name: str) -> dict[str, Any]:
    """Return what the template needs to draw one newsletter's active subscribers."""
    ticks = axis_ticks(max(counts, default=0))
    y = _y_scale(ticks[-1])
    xs = _x_positions(dates)
    return {
        "name": name,
        "colour": colour,
        "latest": counts[-1] if counts else 0,
        "counts": counts,
        "points": " ".join(f"{x:.1f},{y(c):.1f}" for x, c in zip(xs, counts, strict=True)),
        "ticks": [{"y": f"{y(t):.1f}", "label": f"{t:,}"} for t in ticks],
        "dates": _date_labels(dates, xs),
    }


def flow_chart(days: list[tuple[date, int, int]]) -> dict[str, Any]:
    """Return what the template needs to draw new (up) and lost (down) per day as bars."""
    dates = [day for day, _, _ in days]
    top = axis_ticks(max([max(new, lost) for _, new, lost in days] or [0]), count=2)[-1]
    middle = TOP + (HEIGHT - TOP - BOTTOM) / 2
    half = (HEIGHT - TOP - BOTTOM) / 2
    xs = _x_positions(dates)
    width = max(1.0, (WIDTH - LEFT - RIGHT) / max(1, len(dates)) - 2)
    bars = []
    for x, (_day, new, lost) in zip(xs, days, strict=True):
        if new:
            bars.append(
                {"x": f"{x - width / 2:.1f}", "y": f"{middle - new / top * half:.1f}",
                 "height": f"{new / top * half:.1f}", "colour": NEW_COLOUR}
            )  # fmt: skip
        if lost:
            bars.append(
                {"x": f"{x - width / 2:.1f}", "y": f"{middle:.1f}",
                 "height": f"{lost / top * half:.1f}", "colour": LOST_COLOUR}
            )  # fmt: skip
    return {
        "bars": bars,
        "bar_width": f"{width:.1f}",
        "middle": f"{middle:.1f}",
        "ticks": [
            {"y": f"{TOP:.1f}", "label": f"+{top:,}"},
            {"y": f"{middle:.1f}", "label": "0"},
            {"y": f"{HEIGHT - BOTTOM:.1f}", "label": f"\N{MINUS SIGN}{top:,}"},
        ],
        "dates": _date_labels(dates, xs),
        "days": days,
        "new_total": sum(new for _, new, _ in days),
        "lost_total": sum(lost for _, _, lost in days),
    }


@register.inclusion_tag("admin/signalpost_dashboard.html")
def signalpost_dashboard(days: int = 30) -> dict[str, Any]:
    dates, series = subscriber_growth_recent(days=days)
    charts = [
        growth_chart(dates, counts, colour=COLOURS[index % len(COLOURS)], name=newsletter.name)
        for index, (newsletter, counts) in enumerate(series.items())
    ]
    return {
        "dates": dates,
        "charts": charts,
        "flow": flow_chart(subscribers_new_and_lost_recent(days=days)),
        "geometry": {
            "width": WIDTH,
            "height": HEIGHT,
            "left": LEFT,
            "right": WIDTH - RIGHT,
            "top": TOP,
            "bottom": HEIGHT - BOTTOM,
            "date_y": HEIGHT - BOTTOM + 16,
            "title_y": HEIGHT - 4,
            "title_x": LEFT + (WIDTH - LEFT - RIGHT) / 2,
        },
        "sends": sends_latest(limit=8),
        "days": days,
    }
