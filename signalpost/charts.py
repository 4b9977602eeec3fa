"""What the server-drawn SVG charts share (the staff dashboard's, an issue report's)."""

import math


def axis_ticks(maximum: int, *, count: int = 4) -> list[int]:
    """Return whole-number ticks from 0 to at least ``maximum``, about ``count`` of them.

    Steps are 1, 2 or 5 times a power of ten, so labels read as round numbers; a
    maximum of 0 still gets an axis from 0 to 1.
    """
    maximum = max(maximum, 1)
    raw = maximum / count
    power = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    top = math.ceil(maximum / step) * step
    return list(range(0, top + 1, step))
