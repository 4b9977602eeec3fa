"""Every email type as a phone and a desktop client show it: Chromium at 375 and 600 px.

Each email's HTML part (built as the sending code builds it) is opened in
Chromium at both widths, in light and dark mode. Nothing may be wider than the
window (the document's scroll width equals the viewport), and every visible
piece of text must contrast at least 4.5:1 with what is behind it. The issue is
a torture test: a 2000 px image, a 300-character word, a wide table, a long
code line, nested lists, a quote, non-Latin text. Screenshots are kept under
var/screenshots/ (email-<kind>-<width>-<scheme>.png) for a person to look at.
"""

import struct
import zlib
from pathlib import Path

import pytest

from signalpost.accounts.models import Profile
from signalpost.newsletters import emails
from signalpost.publishing.models import Delivery
from signalpost.publishing.rendering import IssueMessages
from signalpost.publishing.services import issue_create
from tests.factories import make_newsletter

pytestmark = pytest.mark.django_db

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
WIDTHS = (375, 600)
IMAGE_URL = "https://images.example.com/wide.png"
TORTURE = f"""Hello **readers**: this issue is here to break things. The rest follows.

## A heading in the body

![A very wide picture]({IMAGE_URL})

{"Unbreakable" + "a" * 289}

| Column one | Column two | Column three | Column four | Column five | Column six | Column seven |
|------------|------------|--------------|-------------|-------------|------------|--------------|
| {"cell " * 6} | {"value " * 6} | {"more " * 6} | {"data " * 6} | x | y | z |

```
def a_long_line(): return "a very long code line that goes on and on and on and on and on"
```

Inline `code` too, and a [link](https://example.com/a-link).

- one
    - nested
        1. deeper
        2. and deeper
- two

> A quoted paragraph with *emphasis*.

### Third level

Текст на русском. 中文文本在这里。 نص عربي هنا. ελληνικά. हिन्दी पाठ।

---

The end.
"""

# For each visible text node's element: its colour against the first opaque background
# behind it, as WCAG 2 computes contrast. Returns the elements below 4.5:1.
LOW_CONTRAST = """
() => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(",").map((x) => parseFloat(x));
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const lum = ({r, g, b}) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0.5) return c;
    }
    return {r: 255, g: 255, b: 255, a: 1};
  };
  const low = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.textContent.trim()) continue;
    const el = node.parentElement;
    const rect = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (rect.width < 2 || rect.height < 2 || style.visibility === "hidden"
        || parseFloat(style.opacity) === 0 || el.closest(".preview")) continue;
    const fg = parse(style.color), bg = background(el);
    const [l1, l2] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (l1 + 0.05) / (l2 + 0.05);
    const text = node.textContent.trim().slice(0, 30);
    if (ratio < 4.5) low.push(`${el.tagName} "${text}" ${ratio.toFixed(2)}`);
  }
  return low;
}
"""


def _png(width, height):
    """A plain PNG of ``width`` x ``height`` pixels (grey), made without an image library."""
    row = b"\x00" + b"\x88\x99\xaa" * width
    data = zlib.compress(row * height)

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def _emails():
    """The HTML part of every kind of email, keyed by kind."""
    newsletter = make_newsletter(
        slug="weekly", name="The Weekly", description="Notes on the week, every Friday."
    )
    profile = Profile.objects.create(email="ann@example.com", name="Ann Example")
    built = {}
    for kind, context in [
        ("confirmation", {"confirmation_url": "https://x.example/c", "expires_days": 7}),
        ("welcome", {}),
        ("preferences_link", {"expires_days": 7}),
    ]:
        message = emails.message_build(
            kind=kind,
            profile=profile,
            newsletter=None if kind == "preferences_link" else newsletter,
            context=context,
            idempotency_key=f"k-{kind}",
        )
        built[kind] = message.html
    issue = issue_create(newsletter=newsletter, subject="Torture test", body_markdown=TORTURE)
    delivery = Delivery(pk=1, issue=issue, email=profile.email)
    built["issue"] = IssueMessages(issue).personalise(delivery, profile=profile).html
    return built


@pytest.fixture
def email_page(browser):
    context = browser.new_context()
    context.set_default_timeout(10_000)
    image = _png(2000, 300)
    # The only remote resource an email here has: the torture issue's 2000 px image.
    context.route(
        "**/*",
        lambda route: (
            route.fulfill(body=image, content_type="image/png")
            if route.request.url == IMAGE_URL
            else route.abort()
        ),
    )
    try:
        yield context.new_page()
    finally:
        context.close()


def test_every_email_fits_phone_and_desktop_widths_with_readable_contrast(email_page):
    page = email_page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems = {}
    for kind, html in _emails().items():
        for width in WIDTHS:
            for scheme in ("light", "dark"):
                page.emulate_media(color_scheme=scheme)
                page.set_viewport_size({"width": width, "height": 800})
                page.set_content(html, wait_until="load")
                if kind == "issue":
                    natural = page.evaluate("document.querySelector('.content img').naturalWidth")
                    assert natural == 2000, "the image must really be 2000 px wide"
                scroll = page.evaluate("document.documentElement.scrollWidth")
                shown = page.evaluate("window.innerWidth")
                page.screenshot(
                    path=str(SCREENSHOTS / f"email-{kind}-{width}-{scheme}.png"), full_page=True
                )
                low = page.evaluate(LOW_CONTRAST)
                if scroll != shown or low:
                    problems[f"{kind} {width} {scheme}"] = (scroll, shown, low)
    assert problems == {}


def test_the_issue_styles_headings_below_the_title_and_gives_code_a_background(email_page):
    page = email_page
    page.set_viewport_size({"width": 600, "height": 800})
    page.set_content(_emails()["issue"], wait_until="load")

    sizes = page.evaluate(
        "['h1', '.content h2', '.content h3'].map("
        "s => parseFloat(getComputedStyle(document.querySelector(s)).fontSize))"
    )
    code_background = page.evaluate(
        "getComputedStyle(document.querySelector('.content pre')).backgroundColor"
    )
    image_width = page.evaluate("document.querySelector('.content img').clientWidth")
    preview = page.evaluate("document.querySelector('.preview').textContent")

    title, h2, h3 = sizes
    assert title > h2 > h3
    assert code_background not in ("rgba(0, 0, 0, 0)", "transparent")
    assert image_width <= 600 - 16
    assert preview.startswith("Hello readers: this issue is here to break things.")
    assert "The rest follows" not in preview
