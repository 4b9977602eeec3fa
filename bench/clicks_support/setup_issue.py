"""Run by bench/clicks.py through ``manage.py shell``: a sent issue with tracked links.

Creates one newsletter, RECIPIENTS profiles subscribed to it, one issue with LINKS
links sent to all of them an hour ago, and writes every tracked path (one per
recipient and link, shuffled) to the file named by BENCH_PATHS_FILE; and the public
double opt-in newsletter BENCH_SUBSCRIBE_SLUG that the subscribe run signs up to.
"""

import os
import random
from datetime import timedelta

from django.utils import timezone

from signalpost.accounts.models import Profile
from signalpost.newsletters.models import Newsletter, Subscription
from signalpost.publishing.models import Delivery, Issue
from signalpost.publishing.rendering import markdown_to_html
from signalpost.publishing.tracking import CLICK, TokenSigner, links_find

RECIPIENTS = int(os.environ.get("BENCH_RECIPIENTS", "2000"))
LINKS = 10

newsletter = Newsletter.objects.create(slug="bench-clicks", name="Bench clicks")
body = "\n\n".join(f"[Link {n}](https://example.com/articles/{n}?ref=bench)" for n in range(LINKS))
sent_at = timezone.now() - timedelta(hours=1)
issue = Issue.objects.create(
    newsletter=newsletter,
    subject="Clicks",
    slug="clicks",
    body_markdown=body,
    status=Issue.Status.SENT,
    sending_started_at=sent_at,
    sent_at=sent_at,
)
issue.body_html = markdown_to_html(body)
issue.tracked_links = links_find(issue.body_html)
issue.save(update_fields=["body_html", "tracked_links"])
assert len(issue.tracked_links) == LINKS, issue.tracked_links
profiles = Profile.objects.bulk_create(
    Profile(email=f"reader{n}@example.com") for n in range(RECIPIENTS)
)
Subscription.objects.bulk_create(
    Subscription(profile=profile, newsletter=newsletter, status="active", subscribed_at=sent_at)
    for profile in profiles
)
deliveries = Delivery.objects.bulk_create(
    Delivery(issue=issue, profile=profile, email=profile.email, status="sent", sent_at=sent_at)
    for profile in profiles
)
signer = TokenSigner(CLICK)
paths = [
    f"/c/{signer.make(issue_id=issue.pk, delivery_id=delivery.pk, index=index)}"
    for delivery in deliveries
    for index in range(LINKS)
]
random.Random(7).shuffle(paths)
with open(os.environ["BENCH_PATHS_FILE"], "w") as handle:
    handle.write("\n".join(paths) + "\n")
# For the subscribe run on the same server: a public double opt-in newsletter.
Newsletter.objects.create(
    slug=os.environ.get("BENCH_SUBSCRIBE_SLUG", "bench-weekly"),
    name="Bench weekly",
    opt_in=Newsletter.OptIn.DOUBLE,
    is_public=True,
)
print(f"issue {issue.pk}: {len(paths)} tracked paths")
