"""The django-newsletter side of bench/fanout.py, run with django-newsletter's own venv.

    BENCH_DN_DATABASE=... BENCH_SMTP_PORT=... SECRET_KEY=... PYTHONPATH=bench/fanout_support \\
    DJANGO_SETTINGS_MODULE=dn_fanout.settings python dn_driver.py setup --subscribers 5000 \\
        --subject "..." --body-html FILE
    ... python dn_driver.py submit

``setup`` (on a migrated database) creates a newsletter, a message with one article
holding the issue's HTML, N subscriptions with ``subscribed=True`` (one INSERT ...
generate_series) and a prepared Submission published a minute ago, with the recipients
``Submission.from_message`` gives it. ``submit`` runs the ``submit_newsletter`` command in
process and prints one line of JSON: the seconds and CPU seconds the command took,
this process's peak RSS (VmHWM) and whether the submission ended up sent.
"""

import argparse
import json
import time
from datetime import timedelta

import django


def vm_hwm_kb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def setup(args):
    from django.db import connection
    from django.utils import timezone
    from newsletter.models import Article, Message, Newsletter, Submission

    with open(args.body_html, encoding="utf-8") as file:
        body_html = file.read()
    newsletter = Newsletter.objects.create(
        title="Fanout Weekly", slug="fanout-weekly", email="news@localhost", sender="Fanout"
    )
    message = Message.objects.create(title=args.subject, slug="fanout-issue", newsletter=newsletter)
    Article.objects.create(post=message, sortorder=10, title=args.subject, text=body_html)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO newsletter_subscription (name, email, create_date, activation_code, "
            "subscribed, subscribe_date, unsubscribed, newsletter_id) "
            "SELECT CASE WHEN g %% 2 = 1 THEN 'Reader ' || g ELSE '' END, "
            "'dn' || g || '@fanout.test', now(), md5(g::text), true, now(), false, %s "
            "FROM generate_series(1, %s) g",
            [newsletter.pk, args.subscribers],
        )
        cursor.execute("ANALYZE")
    submission = Submission.from_message(message)
    submission.prepared = True
    submission.publish_date = timezone.now() - timedelta(minutes=1)
    submission.save()
    print(json.dumps({"subscriptions": submission.subscriptions.count()}))


def submit(args):
    from django.core.management import call_command
    from newsletter.models import Submission

    cpu_started = time.process_time()
    started = time.perf_counter()
    call_command("submit_newsletter", verbosity=0)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    sent = list(Submission.objects.values_list("sent", flat=True))
    print(json.dumps({"seconds": elapsed, "cpu": cpu, "peak_kb": vm_hwm_kb(), "sent": sent}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    setup_parser = commands.add_parser("setup")
    setup_parser.add_argument("--subscribers", type=int, required=True)
    setup_parser.add_argument("--subject", required=True)
    setup_parser.add_argument("--body-html", required=True)
    commands.add_parser("submit")
    args = parser.parse_args()
    django.setup()
    {"setup": setup, "submit": submit}[args.command](args)


if __name__ == "__main__":
    main()
