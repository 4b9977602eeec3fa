"""The branding of a newsletter's emails: its own logo, colour and postal address, or the
site's (``SIGNALPOST_BRAND_LOGO_URL``, ``_COLOR``, ``_POSTAL_ADDRESS``), or none."""

import re
from dataclasses import dataclass
from typing import Any

from signalpost.conf import conf

_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


@dataclass(frozen=True)
class Brand:
    """What ``emails/base.html`` reads as ``brand``; empty strings show nothing."""

    logo_url: str = ""
    color: str = ""
    postal_address: str = ""


def brand_for(newsletter: Any) -> Brand:
    """Return ``newsletter``'s branding, field by field falling back to the site's.

    A colour that is not ``#rrggbb`` is left out: it is written into a stylesheet.
    """
    color = getattr(newsletter, "brand_color", "") or conf.BRAND_COLOR
    return Brand(
        logo_url=getattr(newsletter, "brand_logo_url", "") or conf.BRAND_LOGO_URL,
        color=color if _COLOR.fullmatch(color or "") else "",
        postal_address=getattr(newsletter, "postal_address", "") or conf.BRAND_POSTAL_ADDRESS,
    )
