"""An SMTP sink for bench/subscribe.py: accepts every message, keeps none, counts them.

Run with the project's interpreter (aiosmtpd is one of its dependencies)::

    .venv/bin/python bench/subscribe_support/smtp_sink.py --port 8025 --control-port 8026

Messages are counted per recipient domain. A connection to the control port gets the
counts as one line of JSON, ``{"messages": N, "by_domain": {"a.test": N, ...}}``, and is
closed. ``--arrivals-file`` appends each recipient's arrival time to a file (for the
end-to-end figure). ``--delay-ms`` makes it wait that long before accepting each message, as a
remote mail server's round trips would. SIGTERM or SIGINT stops the sink; it prints the
counts as its last line.
"""

import argparse
import asyncio
import json
import signal
import time
from collections import Counter

from aiosmtpd.smtp import SMTP


class CountingHandler:
    def __init__(self, delay, arrivals=None):
        self.delay = delay
        self.messages = 0
        self.by_domain = Counter()
        self.arrivals = arrivals  # a file: one "epoch-seconds recipient" line per recipient

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        self.messages += 1
        for recipient in envelope.rcpt_tos:
            self.by_domain[recipient.rpartition("@")[2].lower()] += 1
            if self.arrivals is not None:
                self.arrivals.write(f"{time.time():.3f} {recipient.lower()}\n")
        if self.arrivals is not None:
            self.arrivals.flush()
        return "250 Message accepted and discarded"

    def counts(self):
        return {"messages": self.messages, "by_domain": dict(self.by_domain)}


async def serve(host, port, control_port, delay, arrivals_path=None):
    arrivals = open(arrivals_path, "a") if arrivals_path else None  # noqa: SIM115
    handler = CountingHandler(delay, arrivals)
    loop = asyncio.get_running_loop()
    smtp_server = await loop.create_server(
        lambda: SMTP(handler, hostname="smtp-sink.bench", ident="bench smtp sink"),
        host=host,
        port=port,
    )

    async def control(reader, writer):
        writer.write(json.dumps(handler.counts()).encode() + b"\n")
        await writer.drain()
        writer.close()

    control_server = await asyncio.start_server(control, host=host, port=control_port)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"smtp sink listening on {host}:{port}, control on {control_port}", flush=True)
    await stop.wait()
    smtp_server.close()
    control_server.close()
    print(json.dumps(handler.counts()), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument(
        "--delay-ms", type=int, default=0, help="wait before accepting each message (default 0)"
    )
    parser.add_argument(
        "--arrivals-file",
        help="append one line per recipient to this file: arrival time (epoch s), address",
    )
    args = parser.parse_args()
    asyncio.run(
        serve(args.host, args.port, args.control_port, args.delay_ms / 1000, args.arrivals_file)
    )


if __name__ == "__main__":
    main()
