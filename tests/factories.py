"""Small factories: each makes one valid object, overridable by keyword."""

import itertools

from django.contrib.auth import get_user_model

from signalpost.accounts.models import Profile
from signalpost.newsletters.models import Newsletter, Topic

sequence = itertools.count(1)


def make_topic(**fields):
    number = next(sequence)
    fields.setdefault("slug", f"topic-{number}")
    fields.setdefault("name", f"Topic {number}")
    return Topic.objects.create(**fields)


def make_newsletter(*, topics=(), **fields):
    number = next(sequence)
    fields.setdefault("slug", f"letter-{number}")
    fields.setdefault("name", f"Letter {number}")
    fields.setdefault("opt_in", Newsletter.OptIn.SINGLE)
    newsletter = Newsletter.objects.create(**fields)
    newsletter.topics.add(*topics)
    return newsletter


def make_profile(**fields):
    fields.setdefault("email", f"person{next(sequence)}@example.com")
    return Profile.objects.create(**fields)


def make_user(**fields):
    number = next(sequence)
    fields.setdefault("username", f"user{number}")
    fields.setdefault("email", f"user{number}@example.com")
    return get_user_model().objects.create_user(**fields)
