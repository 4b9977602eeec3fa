"""An issue's sanitised HTML as plain text written for people, and its preview text.

The plain-text part of an email is read by text-only clients, screen readers
and watches: no Markdown punctuation (``**``, ``![...](url)``, code fences),
links as numbered references listed at the end, headings on lines of their
own, lists with bullets or numbers and indented by depth, code indented,
quotes marked with a bar, table rows with cells separated by ``|``.
"""

import re
from html.parser import HTMLParser

_BLOCKS = frozenset(
    {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "pre", "blockquote", "table"}
    | {"tr", "hr", "dl", "dt", "dd", "figure", "figcaption", "section", "article"}
)
_SPACE = re.compile(r"[ \t\r\n\f]+")
_BLANK_LINES = re.compile(r"\n{3,}")
# After . ! ? and a space, or after an ideographic or full-width one (no space follows).
_SENTENCE_END = re.compile("(?<=[.!?])\\s+|(?<=[\u3002\uff01\uff1f])")
_PREVIEW_LENGTH = 140


class _TextWriter(HTMLParser):
    """Collects the text of an HTML fragment, line by line, with its links."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current = ""
        self.links: list[str] = []
        self.lists: list[list[int]] = []  # [is_ordered, next number] per open list
        self.quote_depth = 0
        self.pre_depth = 0
        self.href_stack: list[str | None] = []
        self.link_text_start: list[int] = []
        self.row: list[str] | None = None
        self.cell: str | None = None
        self.heading: str | None = None
        self.indent = ""

    # Lines --------------------------------------------------------------------
    def _prefix(self) -> str:
        quote = "│ " * self.quote_depth
        return quote + "    " * (1 if self.pre_depth else 0)

    def _flush(self) -> None:
        text = self.current.strip() if not self.pre_depth else self.current.rstrip()
        if text:
            self.lines.append(self._prefix() + self.indent + text)
        self.current = ""
        self.indent = ""

    def _blank(self) -> None:
        self._flush()
        if self.lines and self.lines[-1] != "":
            self.lines.append("")

    def _write(self, text: str) -> None:
        if self.cell is not None:
            self.cell += text
        else:
            self.current += text

    # Parser callbacks ---------------------------------------------------------
    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in {"ul", "ol", "p"} and self.lists:
            if tag == "p" and self.current.strip() in {"", "•"} | {f"{n}." for n in range(1000)}:
                pass  # a loose list's first paragraph: on the bullet's line
            else:
                self._flush()
                self.indent = "  " * len(self.lists) if tag == "p" else ""
        elif tag in _BLOCKS and tag not in {"tr"}:
            self._blank()
        if tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            self.heading = tag
        elif tag in {"ul", "ol"}:
            self.lists.append([tag == "ol", 1])
        elif tag == "li":
            self._flush()
            indent = "  " * max(len(self.lists) - 1, 0)
            if self.lists and self.lists[-1][0]:
                marker = f"{self.lists[-1][1]}. "
                self.lists[-1][1] += 1
            else:
                marker = "• "
            self.indent = indent
            self.current = marker
        elif tag == "pre":
            self.pre_depth += 1
        elif tag == "blockquote":
            self.quote_depth += 1
        elif tag == "br":
            self._flush()
        elif tag == "hr":
            self.lines.append(self._prefix() + "―" * 20)
        elif tag == "tr":
            self._flush()
            self.row = []
        elif tag in {"td", "th"}:
            self.cell = ""
        elif tag == "a":
            self.href_stack.append(attributes.get("href"))
            self.link_text_start.append(len(self.cell if self.cell is not None else self.current))
        elif tag == "img":
            alt = " ".join((attributes.get("alt") or "").split())
            label = f"Image: {alt}" if alt else "Image"
            self._write(f"[{label}]{self._reference(attributes.get('src'))}")

    def handle_endtag(self, tag):
        if tag == "p" and self.lists:
            self._flush()
            self.indent = "  " * len(self.lists)  # a following paragraph of the same item
        elif tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            title = self.current.strip()
            self._flush()
            if title:
                self.lines.append(("=" if tag in {"h1", "h2"} else "-") * min(len(title), 60))
            self.heading = None
            self._blank()
        elif tag in {"ul", "ol"}:
            if self.lists:
                self.lists.pop()
            self._flush()
            if not self.lists:
                self._blank()
        elif tag == "li":
            self._flush()
        elif tag == "pre":
            self._flush()
            self.pre_depth = max(self.pre_depth - 1, 0)
            self._blank()
        elif tag == "blockquote":
            self._flush()
            self.quote_depth = max(self.quote_depth - 1, 0)
            self._blank()
        elif tag in {"td", "th"}:
            if self.row is not None and self.cell is not None:
                self.row.append(" ".join(self.cell.split()))
            self.cell = None
        elif tag == "tr":
            if self.row:
                self.lines.append(self._prefix() + " | ".join(self.row))
            self.row = None
        elif tag == "a" and self.href_stack:
            href = self.href_stack.pop()
            start = self.link_text_start.pop()
            text = (self.cell if self.cell is not None else self.current)[start:]
            if href and " ".join(text.split()) != href:
                self._write(self._reference(href))
        elif tag in _BLOCKS:
            self._blank()

    def handle_data(self, data):
        if self.pre_depth:
            first, *rest = data.split("\n")
            self.current += first
            for line in rest:
                self._flush_pre()
                self.current = line
            return
        # The writer's own line breaks inside a paragraph (Markdown's soft breaks) stay.
        first, *rest = data.split("\n")
        self._write_inline(first)
        for line in rest:
            if self.cell is None and self.current.strip():
                self._flush()
                self.indent = "  " * len(self.lists)
            self._write_inline(line)

    def _write_inline(self, data: str) -> None:
        text = _SPACE.sub(" ", data)
        written = self.cell if self.cell is not None else self.current
        if not written.strip() or written.endswith(" "):
            text = text.lstrip()
        if self.cell is not None and written and not written.endswith(" "):
            text = " " + text if data[:1].isspace() else text
        self._write(text)

    def _flush_pre(self) -> None:
        self.lines.append(self._prefix() + self.current.rstrip())
        self.current = ""

    def _reference(self, url: str | None) -> str:
        if not url:
            return ""
        if url in self.links:
            return f" [{self.links.index(url) + 1}]"
        self.links.append(url)
        return f" [{len(self.links)}]"

    def text(self) -> str:
        while self.href_stack:  # a link left open still gets its reference
            self.handle_endtag("a")
        self._flush()
        body = "\n".join(self.lines).strip()
        if self.links:
            references = "\n".join(f"[{n}] {url}" for n, url in enumerate(self.links, 1))
            body += "\n\nLinks:\n" + references
        return _BLANK_LINES.sub("\n\n", body)


def html_to_text(html: str) -> str:
    """Return ``html`` (an issue's sanitised body) as plain text for people."""
    writer = _TextWriter()
    writer.feed(html)
    writer.close()
    return writer.text()


def preview_text(html: str) -> str:
    """The first sentence of ``html``'s text (at most 140 characters), for the inbox preview."""

    class _Paragraphs(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.found = ""
            self.skip = 0
            self.current = ""

        def handle_starttag(self, tag, attrs):
            if tag in {"pre", "table", "h1", "h2", "h3", "h4", "h5", "h6", "figcaption"}:
                self.skip += 1

        def handle_endtag(self, tag):
            if tag in {"pre", "table", "h1", "h2", "h3", "h4", "h5", "h6", "figcaption"}:
                self.skip = max(self.skip - 1, 0)
            elif tag in {"p", "li", "blockquote", "div"} and not self.found:
                self.found = " ".join(self.current.split())
                self.current = ""

        def handle_data(self, data):
            if not self.skip and not self.found:
                self.current += data

    parser = _Paragraphs()
    parser.feed(html)
    parser.close()
    text = parser.found or " ".join(parser.current.split())
    return shorten(_SENTENCE_END.split(text, maxsplit=1)[0])


def shorten(text: str, length: int = _PREVIEW_LENGTH) -> str:
    """``text`` on one line, cut at a word before ``length`` characters with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= length:
        return text
    cut = text[: length - 1].rsplit(" ", 1)[0] or text[: length - 1]
    return cut.rstrip(" ,;:") + "…"
