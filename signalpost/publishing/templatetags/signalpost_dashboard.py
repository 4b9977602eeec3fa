"""The admin index's dashboard: subscriber growth as an SVG chart and the latest sends."""

from django import template

from signalpost.publishing.selectors import sends_latest, subscriber_growth_recent

register = template.Library()

CHART_WIDTH = 640
CHART_HEIGHT = 200
PADDING = 30
COLOURS = ["#0b5cad", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207"]


def chart_series(dates, series):
    """Return each newsletter's polyline points, scaled to the chart, and the y maximum."""
    maximum = max((max(points) for points in series.values() if points), default=0) or 1
    step = (CHART_WIDTH - 2 * PADDING) / max(1, len(dates) - 1)
    lines = []
    for index, (newsletter, points) in enumerate(series.items()):
        coordinates = " ".join(
            f"{PADDING + day * step:.1f},"
            f"{CHART_HEIGHT - PADDING - (count / maximum) * (CHART_HEIGHT - 2 * PADDING):.1f}"
            for day, count in enumerate(points)
        )
        lines.append(
            {
                "newsletter": newsletter,
                "points": coordinates,
                "colour": COLOURS[index % len(COLOURS)],
                "latest": points[-1] if points else 0,
                "counts": points,
            }
        )
    return lines, maximum


@register.inclusion_tag("admin/signalpost_dashboard.html")
def signalpost_dashboard(days=30):
    dates, series = subscriber_growth_recent(days=days)
    lines, maximum = chart_series(dates, series)
    return {
        "dates": dates,
        "lines": lines,
        "maximum": maximum,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "padding": PADDING,
        "bottom": CHART_HEIGHT - PADDING,
        "right": CHART_WIDTH - PADDING,
        "sends": sends_latest(limit=8),
        "days": days,
    }
