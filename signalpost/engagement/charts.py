"""The report's chart of clicks per hour: SVG drawn on the server, like the dashboard's."""

from typing import Any

from signalpost.charts import axis_ticks

WIDTH = 640
HEIGHT = 200
LEFT = 48
RIGHT = 24  # room for the last hour label ("48 h"), centred on the axis end
TOP = 12
BOTTOM = 40
COLOUR = "#0b5cad"


def clicks_chart(hours: list[tuple[int, int]]) -> dict[str, Any]:
    """What the template needs to draw human clicks per hour as bars, with labelled axes."""
    top = axis_ticks(max((count for _hour, count in hours), default=0))[-1]
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(hours))
    bottom = HEIGHT - BOTTOM
    bars = [
        {
            "x": f"{LEFT + hour * slot + 1:.1f}",
            "y": f"{bottom - count / top * plot_height:.1f}",
            "height": f"{count / top * plot_height:.1f}",
        }
        for hour, count in hours
        if count
    ]
    return {
        "bars": bars,
        "bar_width": f"{max(1.0, slot - 2):.1f}",
        "colour": COLOUR,
        "ticks": [
            {"y": f"{bottom - tick / top * plot_height:.1f}", "label": f"{tick:,}"}
            for tick in axis_ticks(top)
        ],
        "hour_labels": [
            {"x": f"{LEFT + hour * slot:.1f}", "text": f"{hour} h"}
            for hour in range(0, len(hours) + 1, 12)
        ],
        "geometry": {
            "width": WIDTH,
            "height": HEIGHT,
            "left": LEFT,
            "right": WIDTH - RIGHT,
            "top": TOP,
            "bottom": bottom,
            "label_y": bottom + 16,
            "title_y": HEIGHT - 4,
            "title_x": LEFT + (WIDTH - LEFT - RIGHT) / 2,
        },
        "hours": hours,
        "total": sum(count for _hour, count in hours),
    }
