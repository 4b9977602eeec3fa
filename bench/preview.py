"""The writing page's preview endpoint while a 100,000-recipient send runs.

Run from the repository root (through the lock, as every benchmark here)::

    flock /tmp/bench.lock .venv/bin/python bench/preview.py             # 100,000
    flock /tmp/bench.lock .venv/bin/python bench/preview.py --size 10000

What it does, all on 127.0.0.1 and cleaned up at the end:

- Sets up as ``bench/fanout.py`` does (its ``Sink`` and ``Signalpost`` classes): a fresh
  PostgreSQL database with ``--size`` active subscribers, production settings, Redis as the
  cache, an SMTP sink that discards what it gets.
- Starts gunicorn as ``signalpost serve`` did before granian (2 workers x 4 threads) and
  logs a staff user in (a session cookie and a CSRF token, as the page's script sends them).
- **Quiet**: ``--requests`` POSTs to ``/admin/publishing/issue/<id>/preview/`` one after
  another, each a 20 kB Markdown body (headings, paragraphs, lists, links, code) with one
  word changed each time, as typing does (the renderer remembers only the last body).
- **During the send**: starts 2 ``db_worker`` processes, calls ``issue_send()`` for the
  ``--size`` recipients and POSTs the same way until the send is over; then checks that
  every recipient got the issue once.

Each request's time is from before the request is written to after the whole answer is
read (``http.client``, one keep-alive connection). Reported: p50, p90, p99 and max per
phase, the ratio between the phases, the send's emails/s, and the load average. Goal:
p99 under 150 ms while the send runs.
"""

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import PROJECT_PYTHON, Signalpost, Sink
from harness import Service, free_port

CSRF = "b" * 32  # an unmasked CSRF secret: the cookie and the header carry the same


def markdown_body(target=20_000):
    """About ``target`` characters of an ordinary newsletter's Markdown."""
    parts = ["Hello{{ name }}, and welcome to this week's long read.\n\n"]
    number = 0
    while sum(map(len, parts)) < target:
        number += 1
        parts.append(
            f"## {number}. Section {number}\n\n"
            f"Paragraph {number} talks about **queues**, *caches* and round trips, and why "
            "measuring before changing anything pays. Read [the notes]"
            f"(https://example.org/notes/{number}) if you have ten minutes; the short "
            "version follows in a list.\n\n"
            "- measure before you change anything;\n"
            "- change one thing at a time;\n"
            "- keep the numbers, and the command that made them.\n\n"
            "> A benchmark that cannot be rerun is an anecdote.\n\n"
            "```\nflock /tmp/bench.lock .venv/bin/python bench/preview.py\n```\n\n"
        )
    return "".join(parts)[:target]


def percentile(values, fraction):
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summary(times):
    ms = [t * 1000 for t in times]
    return {
        "requests": len(ms),
        "p50": statistics.median(ms),
        "p90": percentile(ms, 0.90),
        "p99": percentile(ms, 0.99),
        "max": max(ms),
    }


class Previewer:
    """POSTs the body to the preview endpoint over one keep-alive connection."""

    def __init__(self, port, issue_id, session_cookie):
        self.port = port
        self.path = f"/admin/publishing/issue/{issue_id}/preview/"
        self.headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"sessionid={session_cookie}; csrftoken={CSRF}",
            "X-CSRFToken": CSRF,
            "Host": "127.0.0.1",
        }
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.body = markdown_body()
        self.count = 0

    def once(self):
        self.count += 1
        # One word changes, as when typing: the renderer's one-body memory does not help.
        body = self.body.replace("welcome", f"welcome {self.count}", 1)
        data = urlencode({"subject": f"Draft {self.count}", "body_markdown": body})
        started = time.perf_counter()
        try:
            self.connection.request("POST", self.path, body=data, headers=self.headers)
            response = self.connection.getresponse()
        except (OSError, http.client.HTTPException):
            # gunicorn closed the idle keep-alive connection: open another, time afresh.
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            started = time.perf_counter()
            self.connection.request("POST", self.path, body=data, headers=self.headers)
            response = self.connection.getresponse()
        payload = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise SystemExit(f"preview answered {response.status}: {payload[:300]!r}")
        if b"Section 1" not in payload:
            raise SystemExit("the preview lacks the body")
        return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200, help="quiet-phase requests")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for the send")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}", flush=True)
    logdir = tempfile.mkdtemp(prefix="signalpost-preview-")
    fanout_args = argparse.Namespace(
        workers=2,
        profile=None,
        patch=None,
        timeout=args.timeout,
        dkim=False,
        pause_at=None,
        start_only=False,
    )
    sink = Sink(logdir)
    signalpost = Signalpost(fanout_args, sink=sink, logdir=logdir)
    web = workers = None
    try:
        print(f"setting up {signalpost.db_name}: {args.size:,} subscribers", flush=True)
        signalpost.setup([args.size])
        from django.contrib.auth import get_user_model
        from django.db.models import Count
        from django.test import Client

        from signalpost.publishing.models import Delivery, Issue
        from signalpost.publishing.services import issue_create, issue_send

        sending = signalpost.issues[(args.size, "")]
        draft = issue_create(
            newsletter=sending.newsletter, subject="Draft", body_markdown="Being written."
        )
        user = get_user_model().objects.create_superuser("bench", "bench@fanout.test", "x" * 20)
        client = Client()
        client.force_login(user)
        session = client.cookies["sessionid"].value

        port = free_port()
        web = Service(
            "gunicorn",
            [
                str(PROJECT_PYTHON),
                "-m",
                "gunicorn",
                "signalpost.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--threads",
                "4",
                "--access-logfile",
                "/dev/null",
            ],
            env=signalpost.env,
            logdir=logdir,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("GET", "/healthz")
                break
            except OSError:
                if time.monotonic() > deadline or not web.alive():
                    raise SystemExit(f"gunicorn did not start:\n{web.tail()}") from None
                time.sleep(0.2)
        previewer = Previewer(port, draft.pk, session)
        for _ in range(20):  # warm up both gunicorn workers and their renderer children
            previewer.once()

        quiet = [previewer.once() for _ in range(args.requests)]
        print(f"quiet: {json.dumps(summary(quiet))}", flush=True)

        workers = signalpost.start_workers("preview")
        load_before = os.getloadavg()
        started = time.time()
        issue_send(issue=sending)  # returns whether this call started it; preparing is async
        busy = []
        deadline = time.monotonic() + args.timeout
        while True:
            busy.append(previewer.once())
            if len(busy) % 10 == 0:
                sending.refresh_from_db(fields=["status", "sent_at", "recipient_count"])
                if sending.status == Issue.Status.SENT:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("the send did not finish in time")
        load_during = os.getloadavg()
        seconds = sending.sent_at.timestamp() - started
        counts = dict(
            Delivery.objects.filter(issue=sending)
            .values_list("status")
            .annotate(count=Count("id"))
            .order_by()
        )
        recipients = sending.recipient_count
        sink_messages = sink.stats()["messages"]
        print(f"during the send: {json.dumps(summary(busy))}", flush=True)
        quiet_s, busy_s = summary(quiet), summary(busy)
        print()
        print("| | quiet | during the send | ratio |")
        print("| --- | ---: | ---: | ---: |")
        for key in ("requests", "p50", "p90", "p99", "max"):
            unit = "" if key == "requests" else " ms"
            ratio = "" if key == "requests" else f"{busy_s[key] / quiet_s[key]:.1f}x"
            print(f"| {key} | {quiet_s[key]:,.0f}{unit} | {busy_s[key]:,.0f}{unit} | {ratio} |")
        print()
        print(
            f"The send: {recipients:,} recipients in {seconds:.1f} s "
            f"({recipients / seconds:,.0f} emails/s), statuses {counts}, "
            f"the sink counted {sink_messages:,}."
        )
        ok = counts.get("sent") == recipients == sink_messages
        print("Check: every recipient once." if ok else "**check failed**")
        print(f"load average before the send {load_before}, during it {load_during}")
        goal = busy_s["p99"] < 150
        print(f"Goal p99 < 150 ms during the send: {'met' if goal else 'missed'}")
    finally:
        for worker in workers or []:
            worker.stop()
        if web:
            web.stop()
        signalpost.close()
        sink.service.stop()
        for path in Path(logdir).iterdir():
            path.unlink()
        os.rmdir(logdir)


if __name__ == "__main__":
    main()
