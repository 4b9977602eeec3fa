"""The physical limit for bench/fanout.py: smtplib sending one pre-rendered message in a loop.

    python bench/fanout_support/bare_smtp.py --port 8025 --message FILE --count 20000

Opens one SMTP connection, sends the bytes of FILE (a whole RFC 5322 message, CRLF line
endings) ``--count`` times with ``sendmail`` (MAIL, RCPT, DATA: the same commands
Django's SMTP backend sends per message), quits, and prints one line of JSON: the count,
the seconds the loop took, and this process's CPU seconds and peak RSS.
"""

import argparse
import json
import resource
import smtplib
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--message", required=True, help="file holding the message's bytes")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--sender", default="newsletters@localhost")
    parser.add_argument("--recipient", default="reader@fanout.test")
    args = parser.parse_args()
    with open(args.message, "rb") as file:
        message = file.read()
    smtp = smtplib.SMTP(args.host, args.port, timeout=30)
    smtp.ehlo()
    cpu_started = time.process_time()
    started = time.perf_counter()
    for _ in range(args.count):
        smtp.sendmail(args.sender, [args.recipient], message)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    smtp.quit()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"sent": args.count, "seconds": elapsed, "cpu": cpu, "peak_kb": peak_kb}))


if __name__ == "__main__":
    main()
