"""Demo data: a few topics, newsletters, an issue and subscribers to look around with.

It fills several apps, so it sits with the commands above them (docs/architecture.md).
"""

from django.db import transaction

from signalpost.newsletters.models import Newsletter, Subscription, Topic
from signalpost.newsletters.services import subscribe
from signalpost.publishing.models import Issue
from signalpost.publishing.services import issue_create

TOPICS = {"python": "Python", "web": "Web development", "data": "Data"}

NEWSLETTERS = [
    {
        "slug": "python-weekly",
        "name": "Python Weekly",
        "description": "The best Python articles, talks and releases, every Thursday.",
        "topics": ["python"],
    },
    {
        "slug": "django-digest",
        "name": "Django Digest",
        "description": "What changed in Django and its ecosystem this fortnight.",
        "topics": ["python", "web"],
    },
    {
        "slug": "frontend-notes",
        "name": "Frontend Notes",
        "description": "CSS, accessibility and the platform, once a month.",
        "topics": ["web"],
        "opt_in": Newsletter.OptIn.DOUBLE,
        # Try the embeddable form: save a snippet in a folder, `python -m http.server 8080`.
        "embed_origins": "http://localhost:8080\nhttp://127.0.0.1:8080",
    },
    {
        "slug": "data-letters",
        "name": "Data Letters",
        "description": "Databases, pipelines and the people who run them.",
        "topics": ["data"],
    },
]

DEMO_ISSUE = """This week:

- **Django 6.1** brings the Tasks framework to every project.
- Signals, done right: declared arguments, durable receivers.

Send this draft from the admin (Publishing → Issues → *Send the selected issues now*) and
watch the worker print each personalised email.
"""

SUBSCRIBERS = [
    ("jane@example.com", "Jane", ["python-weekly", "django-digest"]),
    ("sam@example.com", "Sam", ["frontend-notes"]),
    ("ada@example.com", "Ada", ["data-letters", "python-weekly"]),
]


@transaction.atomic
def demo_data_load():
    """Create the demo topics, newsletters and subscribers; safe to run again.

    Demo newsletters are single opt-in so subscribing through the site works
    without a mailbox, but for one double opt-in list whose confirmation email
    the console shows. Returns the number of newsletters.
    """
    topics = {
        slug: Topic.objects.get_or_create(slug=slug, defaults={"name": name})[0]
        for slug, name in TOPICS.items()
    }
    newsletters = {}
    for spec in NEWSLETTERS:
        newsletter, _ = Newsletter.objects.get_or_create(
            slug=spec["slug"],
            defaults={
                "name": spec["name"],
                "description": spec["description"],
                "opt_in": spec.get("opt_in", Newsletter.OptIn.SINGLE),
                "sender_name": spec["name"],
                "sender_email": f"{spec['slug']}@newsletters.example.com",
                "embed_allowed": "embed_origins" in spec,
                "embed_origins": spec.get("embed_origins", ""),
            },
        )
        newsletter.topics.add(*(topics[slug] for slug in spec["topics"]))
        newsletters[spec["slug"]] = newsletter
    if not Issue.objects.filter(newsletter=newsletters["python-weekly"]).exists():
        issue_create(
            newsletter=newsletters["python-weekly"],
            subject="Welcome to Python Weekly",
            body_markdown=DEMO_ISSUE,
        )
    for email, name, slugs in SUBSCRIBERS:
        for slug in slugs:
            subscribe(
                email=email,
                name=name,
                newsletter=newsletters[slug],
                source=Subscription.Source.ADMIN,
            )
    return len(newsletters)
