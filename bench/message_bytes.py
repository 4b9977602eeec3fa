"""CPU per issue message built for SMTP: the fan-out's per-recipient cost, no database of yours.

Builds the personalised message of one issue for N recipients (unsaved model
instances, a throwaway SQLite for the template look-up, no SMTP) and times, in process CPU time,
``personalise()`` + ``as_bytes()`` (what a worker sends over SMTP) against
``personalise()`` + Django's ``email().message().as_bytes()``, and the same SMTP path
for a body with 5 links with click tracking off and on (each reader's 5 signed
tokens, ``publishing.tracking``). Prints the
minimum and median µs per message over --runs runs (Django's path a third as many), and
the ratio of the two minimums: on a busy machine, read that. To compare two commits,
run it from each checkout back to back: ``cd CHECKOUT && python
/path/to/bench/message_bytes.py`` measures that checkout's code.
"""

import argparse
import email.policy
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signalpost.settings")

import django


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    # The messages are unsaved instances, but building one looks up the newsletter's stored
    # templates (none here): a throwaway SQLite database answers, so a fresh checkout runs it.
    scratch = tempfile.TemporaryDirectory()
    os.environ["DATABASE_URL"] = f"sqlite:///{scratch.name}/bench.sqlite3"
    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from signalpost.accounts.models import Profile
    from signalpost.newsletters.models import Newsletter
    from signalpost.publishing.models import Delivery, Issue
    from signalpost.publishing.rendering import IssueMessages

    settings.SIGNALPOST_SITE_URL = "https://news.example.com"
    newsletter = Newsletter(
        pk=1,
        slug="weekly",
        name="The Weekly",
        sender_name="Editors",
        sender_email="editors@example.com",
        reply_to="letters@example.com",
        is_public=True,
    )
    issue = Issue(
        pk=1,
        newsletter=newsletter,
        slug="first",
        subject="First issue",
        body_markdown="Some *text* and a [link](https://example.com).\n\n" * 40,
        body_html="<p>" + "Some <em>text</em>. " * 200 + "</p>",
    )
    readers = [
        (Delivery(pk=n, issue=issue, email=f"reader{n}@example.com"), f"Reader {n}")
        for n in range(args.messages)
    ]
    readers = [
        (delivery, Profile(pk=delivery.pk, email=delivery.email, name=name))
        for delivery, name in readers
    ]
    messages = IssueMessages(issue)
    linked = Issue(
        pk=2,
        newsletter=newsletter,
        slug="linked",
        subject="Linked issue",
        body_markdown="",
        body_html="<p>"
        + "Some <em>text</em>. " * 180
        + "".join(f'<a href="https://example.org/{n}?ref=news">link {n}</a> ' for n in range(5))
        + "</p>",
    )
    untracked, tracked = IssueMessages(linked), IssueMessages(linked, tracking=True)

    def untracked_bytes(delivery, profile):
        return untracked.personalise(delivery, profile=profile).as_bytes()

    def tracked_bytes(delivery, profile):
        return tracked.personalise(delivery, profile=profile).as_bytes()

    def smtp_bytes(delivery, profile):
        return messages.personalise(delivery, profile=profile).as_bytes()

    def django_bytes(delivery, profile):
        message = messages.personalise(delivery, profile=profile).email()
        return message.message(policy=email.policy.SMTP).as_bytes()

    print(f"{args.messages:,} messages, {args.runs} runs, CPU µs per message")
    print(f"| {'path':<40} | {'min':>7} | {'median':>7} |")
    print(f"| {'-' * 40} | {'-' * 6}: | {'-' * 6}: |")
    mins = []
    for label, build in [
        ("personalise + as_bytes (SMTP)", smtp_bytes),
        ("personalise + Django's message", django_bytes),
        ("5 links, tracking off", untracked_bytes),
        ("5 links, tracking on", tracked_bytes),
    ]:
        runs = []
        for _ in range(args.runs if build is not django_bytes else max(1, args.runs // 3)):
            start = time.process_time()
            for delivery, profile in readers:
                build(delivery, profile)
            runs.append((time.process_time() - start) / args.messages * 1e6)
        print(f"| {label:<40} | {min(runs):>7.1f} | {statistics.median(runs):>7.1f} |")
        mins.append(min(runs))
    # Django's path is the same code before and after a change to ours: a yardstick of
    # how fast the machine ran, to read the first row against on a busy machine.
    print(f"as_bytes costs {mins[0] / mins[1]:.1%} of Django's message (min against min)")
    extra = mins[3] - mins[2]
    print(f"tracking 5 links costs {extra:.1f} µs more per message ({mins[3] / mins[2]:.2f}x)")


if __name__ == "__main__":
    main()
