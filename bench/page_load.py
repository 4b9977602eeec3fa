"""A small, bounded GET load on one web page, for its latency while something else runs.

``PageLoad(url, logdir, clients=2, pause=0.1)`` starts this file as a process of its own
(so its timing does not share a GIL with the benchmark's own work): ``clients`` threads,
each with one keep-alive connection to ``url`` (127.0.0.1 only), each sending a request,
reading the whole answer, pausing ``pause`` seconds, and again: a closed loop of at most
``clients / pause`` requests a second, whatever the server's speed. Every answer is one
line of the process's log: when the request started (Unix time), its latency in ms, the
status (0: no answer). ``figures(start, end)`` reads the requests that started between
the two, so one load spans several phases of a benchmark; ``stop()`` ends it.
"""

import argparse
import http.client
import math
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Service


class PageLoad:
    def __init__(self, url, logdir, *, clients=2, pause=0.1):
        self.url = url
        self.out = Path(logdir) / "page-load.txt"
        argv = [sys.executable, __file__, url, str(self.out), f"--clients={clients}"]
        self.service = Service("page-load", [*argv, f"--pause={pause}"], env=None, logdir=logdir)

    def figures(self, start, end):
        """Requests that started in [start, end]: count, non-200s, p50 and p99 in ms."""
        latencies, failed = [], 0
        for line in self.out.read_text().splitlines():
            started, latency, status = line.split()
            if start <= float(started) <= end:
                latencies.append(float(latency))
                failed += status != "200"
        latencies.sort()
        return {
            "requests": len(latencies),
            "failed": failed,
            "p50": _percentile(latencies, 0.50),
            "p99": _percentile(latencies, 0.99),
        }

    def stop(self):
        self.service.stop()


def _percentile(ordered, fraction):
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def _client(url, pause, out, lock):
    parts = urlsplit(url)
    if parts.hostname != "127.0.0.1":
        raise SystemExit("the page load only requests 127.0.0.1")
    path = parts.path or "/"
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    while True:
        started, clock = time.time(), time.perf_counter()
        try:
            connection.request("GET", path)
            answer = connection.getresponse()
            answer.read()
            status = answer.status
        except (OSError, http.client.HTTPException):
            status = 0
            connection.close()
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        latency = (time.perf_counter() - clock) * 1000
        with lock:
            out.write(f"{started:.4f} {latency:.2f} {status}\n")
            out.flush()
        time.sleep(pause)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--pause", type=float, default=0.1)
    args = parser.parse_args()
    lock = threading.Lock()
    with open(args.out, "a") as out:
        threads = [
            threading.Thread(target=_client, args=(args.url, args.pause, out, lock), daemon=True)
            for _ in range(args.clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


if __name__ == "__main__":
    main()
