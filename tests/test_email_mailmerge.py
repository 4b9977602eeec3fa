"""A batch of subscription emails renders each template once and fills in each person's
values (``newsletters.mailmerge``): every person must get what a render of their own gives."""

import re
from types import SimpleNamespace

import pytest
from django.template import Context, Engine
from django.utils import timezone

from signalpost.newsletters import emails, mailmerge
from signalpost.newsletters.models import EmailTemplate
from signalpost.newsletters.services import ConsentEvidence
from signalpost.newsletters.tasks import subscribe_queue
from tests.durable_helpers import run_worker_until_idle

ENGINE = Engine(autoescape=True, libraries={"i18n": "django.templatetags.i18n"})

HOSTILE = '<script>alert(1)</script> "O\'Brien" & Co {{ secret }} %(name)s'
PEOPLE = [
    {"name": "Ann", "url": "https://news.example.com/confirm/a:1/"},
    {"name": "", "url": "https://news.example.com/confirm/b:2/"},
    {"name": HOSTILE, "url": "https://news.example.com/confirm/c:3/?x=1&y=2"},
    {"name": "Zoë Ünïcode", "url": "https://news.example.com/confirm/d:4/"},
]


def render_each(source, people=PEOPLE, finish=str):
    """Each person's text, merged and rendered on its own; and the memo of the merges."""
    template = ENGINE.from_string(source)
    memo = {}
    results = []
    for values in people:

        def render_with(given, probe):
            profile = mailmerge.StandIn({"name": given["name"]}, probe)
            return template.render(Context({"profile": profile, "url": given["url"]}))

        def render_direct(values=values):
            profile = SimpleNamespace(name=values["name"], pk=7, attributes={"city": "Oslo"})
            return finish(template.render(Context({"profile": profile, "url": values["url"]})))

        merged = mailmerge.merged(
            memo,
            key="t",
            values=values,
            render_with=render_with,
            finish=finish,
            render_direct=render_direct,
        )
        results.append((merged, render_direct()))
    return results, memo


def merges_made(memo, *, named_only=False):
    """The merges in ``memo`` (``named_only``: those for people with a name)."""
    return [
        merge
        for (_, shape), merge in memo.items()
        if isinstance(merge, mailmerge._Merge) and (not named_only or ("name", True) in shape)
    ]


@pytest.mark.parametrize(
    "source",
    [
        "<p>{% if profile.name %}Hello {{ profile.name }},{% else %}Hello,{% endif %}</p>"
        '<a href="{{ url }}">go</a>',
        "{% autoescape off %}Hi {{ profile.name }}\n{{ url }}{% endautoescape %}",
        "{% load i18n %}{% blocktranslate trimmed with name=profile.name %}"
        "Hello {{ name }},{% endblocktranslate %} {{ url }}",
        "{{ profile.name|default:'friend' }} {{ url }} {{ url }}",
    ],
)
def test_a_template_that_prints_the_values_is_merged_and_each_person_gets_their_own(source):
    results, memo = render_each(source)
    for merged, direct in results:
        assert merged == direct
    assert merges_made(memo), "rendered once per shape, not per person"


@pytest.mark.parametrize(
    "source",
    [
        "{% if profile.name == 'Ann' %}VIP {% endif %}{{ url }}",
        "{{ profile.name|upper }} {{ url }}",
        "{{ profile.name|length }} {{ url }}",
        "{{ profile.name|truncatechars:3 }} {{ url }}",
        "{{ url|urlencode }}",
        "{{ profile.pk }} {{ url }}",
        "{{ profile.attributes.city }} {{ url }}",
        "{% if 'A' in profile.name %}A{% endif %}{{ url }}",
        "{{ profile.name|slice:':2' }}",
        "{{ profile.name|escapejs }}",
        "{{ profile.name|lower }}",
        "{{ profile.name|wordcount }}",
        "{{ profile.name|first }}",
        "{% if profile.name|length > 3 %}long{% endif %}",
        "{{ profile.name }} {% autoescape off %}{{ profile.name }}{% endautoescape %}",
    ],
)
def test_a_template_that_works_on_a_value_is_rendered_for_each_person(source):
    results, memo = render_each(source)
    for merged, direct in results:
        assert merged == direct
    assert not merges_made(memo, named_only=True), "no merge it cannot prove"


def test_a_hostile_name_is_escaped_in_html_and_left_alone_in_plain_text():
    [_, _, (html, _), _], _ = render_each("<b>{{ profile.name }}</b>")
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    [_, _, (text, _), _], _ = render_each(
        "{% autoescape off %}{{ profile.name }}{% endautoescape %}"
    )
    assert text == HOSTILE, "a person's text is never read as a template or a token"


def test_the_finishing_step_runs_once_per_shape_not_per_person():
    finished = []

    def finish(text):
        finished.append(text)
        return text

    results, _ = render_each("<p>{{ profile.name }}</p>", finish=finish)
    assert all(merged == direct for merged, direct in results)
    # render_each renders each person directly once too, to compare.
    assert len(finished) == len(PEOPLE) + 2, "once for those with a name, once for the others"


def sign_up(newsletter, addresses_and_names):
    for address, name in addresses_and_names:
        subscribe_queue(
            email=address,
            newsletter=newsletter,
            name=name,
            consent=ConsentEvidence(at=timezone.now(), ip="192.0.2.1", user_agent="test"),
        )


SIGN_UPS = [
    ("ann@example.com", "Ann"),
    ("nameless@example.com", ""),
    ("hostile@example.com", HOSTILE),
    ("zoe@example.com", "Zoë"),
]


def content(message, kind):
    """A part of a received message, with the line ends the template has."""
    return message.get_body((kind,)).get_content().replace("\r\n", "\n")


def unsigned(text):
    """``text`` with the signature and time of each signed link left out (they change by
    the second)."""
    return re.sub(r"/[\w-]+:[\w-]+:[\w-]+/", "/SIGNED/", text)


def direct_message(newsletter, address):
    """The confirmation email of ``address`` as one send alone builds it."""
    subscription = newsletter.subscriptions.get(profile__email=address)
    return emails.confirmation_message(subscription=subscription, idempotency_key="k")


@pytest.mark.django_db(transaction=True)
def test_a_batch_of_confirmations_gives_each_person_the_email_a_single_send_gives(
    smtp_inbox, double_opt_in_newsletter
):
    sign_up(double_opt_in_newsletter, SIGN_UPS)
    run_worker_until_idle()
    received = {message["To"]: message for message in smtp_inbox.wait_for(len(SIGN_UPS))}
    assert smtp_inbox.sessions == 1
    for address, name in SIGN_UPS:
        direct = direct_message(double_opt_in_newsletter, address)
        message = received[address]
        assert message["Subject"] == direct.subject
        assert unsigned(content(message, "plain")) == unsigned(direct.text.replace("\r\n", "\n"))
        html = content(message, "html")
        if name == HOSTILE:
            assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
            assert HOSTILE in content(message, "plain")
        else:
            assert unsigned(html).rstrip("\n") == unsigned(
                direct.html.replace("\r\n", "\n")
            ).rstrip("\n")
    assert "Hello Ann," in content(received["ann@example.com"], "plain")
    assert "Hello,\n" in content(received["nameless@example.com"], "plain")


@pytest.mark.django_db(transaction=True)
def test_a_stored_template_that_compares_a_name_still_gets_each_person_right(
    smtp_inbox, double_opt_in_newsletter
):
    EmailTemplate.objects.create(
        name="confirmation.txt",
        newsletter=double_opt_in_newsletter,
        body=(
            "{% if profile.name == 'Ann' %}Dear Ann{% else %}Dear {{ profile.name|upper }}"
            "{% endif %} {{ confirmation_url }} {{ unsubscribe_url }}"
        ),
    )
    sign_up(double_opt_in_newsletter, [*SIGN_UPS[:2], ("bob@example.com", "Bob")])
    run_worker_until_idle()
    received = {message["To"]: message for message in smtp_inbox.wait_for(3)}
    bodies = {to: content(message, "plain") for to, message in received.items()}
    assert bodies["ann@example.com"].startswith("Dear Ann ")
    assert bodies["bob@example.com"].startswith("Dear BOB ")
    for address in bodies:
        direct = direct_message(double_opt_in_newsletter, address)
        expected = unsigned(direct.text.replace("\r\n", "\n"))
        assert unsigned(bodies[address]).rstrip("\n") == expected.rstrip("\n")
