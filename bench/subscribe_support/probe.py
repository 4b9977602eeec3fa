"""In-process look at one subscribe POST, for bench/subscribe.py's diagnosis.

Runs in either virtual environment (Signalpost's or django-newsletter's) with the same
settings and database as the server under test, through Django's test client with CSRF
checks on (GET the form, then POST it), and prints one line of JSON:

- ``statements``: SQL statements per subscribe POST (median over 3 POSTs), as
  Django captures them (BEGIN/COMMIT and savepoints included; the health check that a
  persistent connection runs at the start of each request under a real server is not);
- ``sql``: the statements of the last POST, shortened;
- ``ms``: the median in-process time of a POST (test client, no HTTP server), and
  ``cpu_ms`` the median CPU time of this process for one (waits for the database and the
  SMTP server left out);
- with ``--profile-out FILE``, ``--profile-posts`` more POSTs under cProfile, whose
  statistics (sorted by cumulative and by own time) are written to FILE, and the raw
  statistics beside it (``.prof``, for ``python -m pstats``).

Usage (bench/subscribe.py sets the environment)::

    python probe.py --target signalpost --domain sp.bench.test --count 5
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import re
import statistics
import time

TARGETS = {
    "signalpost": {
        "settings": "signalpost.settings",
        "form": "/subscribe/?newsletter={slug}",
        "post": "/subscribe/",
        "ok": (200,),
    },
    "newsletter": {
        "settings": "dn_site.settings",
        "form": "/newsletter/{slug}/subscribe/",
        "post": "/newsletter/{slug}/subscribe/",
        "ok": (302,),
    },
}
TOKEN_PATTERN = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')


def form_data(target, *, email, slug, token):
    if target == "signalpost":
        return {
            "csrfmiddlewaretoken": token,
            "user_email": email,
            "name": "Bench Reader",
            "newsletter": slug,
            "website": "",
        }
    return {"csrfmiddlewaretoken": token, "name_field": "Bench Reader", "email_field": email}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=sorted(TARGETS), required=True)
    parser.add_argument("--slug", default="bench-weekly")
    parser.add_argument("--domain", required=True, help="email domain of the addresses")
    parser.add_argument("--count", type=int, default=30, help="timed POSTs")
    parser.add_argument("--profile-out")
    parser.add_argument("--profile-posts", type=int, default=200)
    args = parser.parse_args()
    target = TARGETS[args.target]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", target["settings"])

    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(enforce_csrf_checks=True, HTTP_HOST="127.0.0.1")
    page = client.get(target["form"].format(slug=args.slug))
    token = TOKEN_PATTERN.search(page.content).group(1).decode()
    post_path = target["post"].format(slug=args.slug)
    tag = f"probe{os.getpid()}"

    def post(number):
        email = f"{tag}-{number}@{args.domain}"
        response = client.post(
            post_path, form_data(args.target, email=email, slug=args.slug, token=token)
        )
        if response.status_code not in target["ok"]:
            raise SystemExit(
                f"probe POST answered {response.status_code}: {response.content[:500]!r}"
            )

    post(0)  # warm: first-use imports, template loading, connections
    counts, times, cpu_times, sql = [], [], [], []
    for number in range(1, args.count + 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        post(number)
        times.append((time.perf_counter() - start) * 1000)
        cpu_times.append((time.process_time() - cpu_start) * 1000)
    for number in range(args.count + 1, args.count + 4):
        with CaptureQueriesContext(connection) as captured:
            post(number)
        counts.append(len(captured.captured_queries))
        sql = [" ".join(query["sql"].split())[:160] for query in captured.captured_queries]
    result = {
        "target": args.target,
        "statements": statistics.median(counts),
        "ms": round(statistics.median(times), 2),
        "cpu_ms": round(statistics.median(cpu_times), 2),
        "sql": sql,
    }
    if args.profile_out:
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        for number in range(args.profile_posts):
            post(100_000 + number)
        profiler.disable()
        elapsed = time.perf_counter() - start
        out = io.StringIO()
        out.write(
            f"{args.target}: {args.profile_posts} subscribe POSTs in process under cProfile, "
            f"{elapsed * 1000 / args.profile_posts:.2f} ms each (profiling inflates this)\n"
        )
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(30)
        with open(args.profile_out, "w") as handle:
            handle.write(out.getvalue())
        profiler.dump_stats(os.path.splitext(args.profile_out)[0] + ".prof")
        result["profile_out"] = args.profile_out
    print(json.dumps(result))


if __name__ == "__main__":
    main()
