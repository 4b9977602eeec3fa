"""Web origins (``scheme://host[:port]``) as the embeddable form's allowed sites list them.

A browser names the page a request comes from in its ``Origin`` header in exactly this
form: lower-case scheme and host, the host in ASCII (an IDN as ``xn--``), the port only
when it is not the scheme's default. :func:`origin_normalize` brings what staff type
and what browsers send to that one form, so comparing two origins is comparing strings.
"""

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

DEFAULT_PORTS = {"http": 80, "https": 443}
ORIGINS_MAX = 50
ORIGIN_MAX_LENGTH = 300


def origin_normalize(text: str) -> str | None:
    """Return ``text`` as an origin in the form browsers send, or ``None`` if it is not one.

    Only ``http`` and ``https`` with a host and nothing after it but one ``/``:
    no user, path, query or fragment.
    """
    text = text.strip()
    if not text or len(text) > ORIGIN_MAX_LENGTH or not text.isprintable() or " " in text:
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in DEFAULT_PORTS or not host or parts.username is not None:
        return None
    if parts.path not in {"", "/"} or parts.query or parts.fragment or text.endswith(("?", "#")):
        return None
    if host.startswith("["):
        return None  # urlsplit gives IPv6 hosts without brackets; anything else is odd
    if ":" in host:
        host = f"[{host}]"
    else:
        try:
            host = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            return None
    if port is None or port == DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def origins_parse(text: str) -> list[str]:
    """Return the origins listed in ``text`` (one a line, blank lines ignored), normalised
    and without repeats; raise ``ValidationError`` naming the first line that is not one."""
    origins: list[str] = []
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > ORIGINS_MAX:
        raise ValidationError(
            _("embed_origins: at most %(max)d origins; this list has %(count)d."),
            code="too_many",
            params={"max": ORIGINS_MAX, "count": len(lines)},
        )
    for line in lines:
        origin = origin_normalize(line)
        if origin is None:
            raise ValidationError(
                _(
                    "embed_origins: %(line)s is not an origin. Write one per line as "
                    "scheme://host[:port], such as https://blog.example.com (no path)."
                ),
                code="invalid",
                params={"line": line[:100]},
            )
        if origin not in origins:
            origins.append(origin)
    return origins


def origins_validate(text: str) -> None:
    """Model field validator: every line of ``text`` is an origin."""
    origins_parse(text)
