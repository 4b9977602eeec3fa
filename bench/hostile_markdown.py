"""Hostile Markdown: saving an issue answers within 2 s whatever its body.

Run from the repository root::

    .venv/bin/python bench/hostile_markdown.py            # every kind at 20 kB and at the limit
    .venv/bin/python bench/hostile_markdown.py --quick    # every kind at the limit only

What it does:

- migrates a throwaway SQLite database (a temp dir, deleted at the end) with
  ``DEBUG=0``, adds a newsletter and an API token;
- POSTs each body of a corpus of hostile Markdown to the real API,
  ``POST /api/v1/newsletters/{slug}/issues``, through Django's test client (the
  whole request: JSON parsing, validation, rendering in the renderer child,
  the INSERT), and times the call; the outcome is ``accepted`` (201) or
  ``refused`` (400 naming ``body_markdown``); anything else is an error. Bodies
  are built up to a size (the unit repeated), or are fixed (``"1. " * 500``);
- prints one row per body (kind, size in bytes, outcome, seconds) and the worst
  time, against the goal of 2 s;
- then the normal cost: the first render of a process (the renderer child's
  start), the steady-state round trip of a small body through the child against
  rendering it in this process (median of 200, each body distinct so that the
  memo of the last body rendered does not answer), and a realistic long issue
  (headings, links, images, lists, quotes, code, footnotes) at half, all and
  twice ``BODY_MAX_LENGTH``, through the child with no deadline, best of 3.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
GOAL_SECONDS = 2.0


def fill(unit, size):
    return unit * max(1, size // len(unit))


def abbreviations(size):
    count = size // 38
    definitions = "".join(f"*[ABBR{number}]: An abbreviation\n" for number in range(count))
    return definitions + "\n" + " ".join(f"ABBR{number}" for number in range(count))


def footnotes(size):
    count = size // 30
    references = " ".join(f"word[^{number}]" for number in range(count))
    return references + "\n\n" + "".join(f"[^{number}]: A note.\n" for number in range(count))


def references(size):
    count = size // 48
    definitions = "".join(
        f"[ref{number}]: https://example.com/{number}\n" for number in range(count)
    )
    body = " ".join(f"[a][ref{number}]" for number in range(count)) + "\n\n" + definitions
    return body[:size]


def table(size):
    return "| a | b |\n|---|---|\n" + fill("| [x | <y |\n", size - 20)


# kind: a function of the size, or a fixed body (size None).
BUILT = {
    "unclosed links `[](`": lambda size: fill("[](", size),
    "backslashes": lambda size: fill("\\", size),
    "abbreviation definitions": abbreviations,
    "footnote definitions": footnotes,
    "reference definitions": references,
    "nested raw HTML `<div>`": lambda size: fill("<div>", size),
    'nested md_in_html `<div markdown="1">`': lambda size: fill('<div markdown="1">', size),
    "open brackets `[`": lambda size: fill("[", size),
    "open images `![`": lambda size: fill("![", size),
    "nested brackets `[[…]]`": lambda size: fill("[", size // 2) + fill("]", size // 2),
    "open tags `<a`": lambda size: fill("<a", size),
    "open tags `<a ` (spaced)": lambda size: fill("<a ", size),
    "angle brackets `<`": lambda size: fill("<", size),
    "autolinks `<http://a`": lambda size: fill("<http://a", size),
    "html comments `<!--`": lambda size: fill("<!--", size),
    "processing instructions `<?`": lambda size: fill("<?", size),
    "cdata `<![CDATA[`": lambda size: fill("<![CDATA[", size),
    "inline tags `<b>`": lambda size: fill("<b>", size),
    "emphasis `*a`": lambda size: fill("*a", size),
    "emphasis `_a`": lambda size: fill("_a", size),
    "strong `**a`": lambda size: fill("**a", size),
    "asterisks `*`": lambda size: fill("*", size),
    "backticks (`` ` ``)": lambda size: fill("`", size),
    "code spans (`` `a ``)": lambda size: fill("`a", size),
    "entities `&#`": lambda size: fill("&#", size),
    "quotes nested `> > >`": lambda size: fill("> ", size),
    "lists nested `- - -`": lambda size: fill("- ", size),
    "lists nested `1. 1. 1.`": lambda size: fill("1. ", size),
    "indented lists": lambda size: "".join(
        "    " * depth + "- x\n" for depth in range(int((size / 2) ** 0.5))
    ),
    "100 stray `[` in one long paragraph": lambda size: "[" * 100 + fill("word ", size - 100),
    "table cells with `[` and `<`": table,
    "fences (```` ``` ````)": lambda size: fill("```\n", size),
    "definition lists": lambda size: fill("a\n: b\n", size),
    "attribute lists `{: }`": lambda size: fill("# h {: #a .b }\n", size),
    "hard breaks": lambda size: fill("a  \n", size),
    "blank lines": lambda size: fill("\n", size),
    "prose (control)": lambda size: fill("Some *plain* prose with [a link](https://e.com). ", size),
}
FIXED = {
    "quotes nested 1000 deep": "> " * 1_000 + "deep",
    "lists nested 500 deep": "1. " * 500,
    'the issue\'s `"[](" * 10000`': "[](" * 10_000,
}


def setup(tmpdir):
    sys.path.insert(0, str(REPO_ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "signalpost.settings"
    os.environ["DATABASE_URL"] = f"sqlite:///{tmpdir}/bench.sqlite3"
    os.environ.setdefault("DEBUG", "0")
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    setup_test_environment()
    call_command("migrate", verbosity=0, interactive=False)
    from signalpost.api.tokens import api_token_create
    from tests.factories import make_newsletter

    make_newsletter(slug="bench", name="Bench")
    return api_token_create(name="bench")[1]


def post_issue(client, token, body):
    """POST the body as an issue; return (outcome, seconds)."""
    from signalpost.publishing.models import Issue

    started = time.perf_counter()
    response = client.post(
        "/api/v1/newsletters/bench/issues",
        data=json.dumps({"subject": "Hostile", "body_markdown": body}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    seconds = time.perf_counter() - started
    if response.status_code == 201:
        Issue.objects.filter(pk=response.json()["id"]).delete()
        return "accepted", seconds
    fields = [error["field"] for error in response.json().get("errors", [])]
    if response.status_code == 400 and fields == ["body_markdown"]:
        return "refused", seconds
    return f"ERROR {response.status_code}", seconds


def normal_cost():
    from signalpost.publishing import markdown_sandbox

    markdown_sandbox._sandbox.stop()  # as in a new process: no child yet
    started = time.perf_counter()
    markdown_sandbox.render("The *first* body of a process.", timeout=30)
    first = time.perf_counter() - started
    small = (
        "# Hello\n\nA *short* issue with [a link](https://example.com) and a list:\n\n- a\n- b\n"
    )
    child, here = [], []
    for number in range(200):
        body = f"{small}\nNumber {number}."
        started = time.perf_counter()
        markdown_sandbox.render(body, timeout=30)
        child.append(time.perf_counter() - started)
        started = time.perf_counter()
        markdown_sandbox.markdown_render(body)
        here.append(time.perf_counter() - started)
    print()
    print(f"first render of a process (starts the child): {first * 1000:.0f} ms")
    print(
        f"small body ({len(small) + 12} bytes), median of 200: through the child "
        f"{statistics.median(child) * 1000:.2f} ms, in this process "
        f"{statistics.median(here) * 1000:.2f} ms"
    )


def long_issues():
    from signalpost.publishing import markdown_sandbox
    from signalpost.publishing.services import BODY_MAX_LENGTH
    from tests.test_api import long_newsletter_body

    print()
    print("| realistic long issue, bytes | best of 3, s (through the child) | worst of 3, s |")
    print("|---:|---:|---:|")
    for size in (BODY_MAX_LENGTH // 2, BODY_MAX_LENGTH, BODY_MAX_LENGTH * 2):
        body = long_newsletter_body(size)[:size]
        times = []
        for number in range(3):
            started = time.perf_counter()
            markdown_sandbox.render(body + " " * number, timeout=60)
            times.append(time.perf_counter() - started)
        print(f"| {len(body.encode()):,} | {min(times):.2f} | {max(times):.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only bodies at the size limit")
    args = parser.parse_args()
    tmpdir = tempfile.mkdtemp(prefix="signalpost-bench-markdown-")
    try:
        token = setup(tmpdir)
        from django.conf import settings
        from django.test import Client

        from signalpost.publishing.services import BODY_MAX_LENGTH

        client = Client()
        post_issue(client, token, "Warm *up*.")  # starts the renderer child
        sizes = [BODY_MAX_LENGTH] if args.quick else [20_000, BODY_MAX_LENGTH]
        cases = [(kind, build(size)) for kind, build in BUILT.items() for size in sizes]
        cases += list(FIXED.items())
        timeout = settings.SIGNALPOST_MARKDOWN_RENDER_TIMEOUT
        print(f"BODY_MAX_LENGTH {BODY_MAX_LENGTH:,}, MARKDOWN_RENDER_TIMEOUT {timeout} s")
        print()
        print("| kind | bytes | outcome | seconds |")
        print("|---|---:|---|---:|")
        worst = ("", 0, "", 0.0)
        errors = 0
        for kind, body in cases:
            outcome, seconds = post_issue(client, token, body)
            size = len(body.encode())
            print(f"| {kind} | {size:,} | {outcome} | {seconds:.3f} |", flush=True)
            errors += outcome.startswith("ERROR")
            if seconds > worst[3]:
                worst = (kind, size, outcome, seconds)
        kind, size, outcome, seconds = worst
        verdict = "met" if seconds < GOAL_SECONDS and not errors else "MISSED"
        print()
        print(
            f"worst: {seconds:.3f} s ({kind}, {size:,} bytes, {outcome}); "
            f"goal < {GOAL_SECONDS:g} s, every body accepted or refused: {verdict}"
        )
        normal_cost()
        long_issues()
        return 0 if verdict == "met" else 1
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
