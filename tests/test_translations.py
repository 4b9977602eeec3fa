"""Every page and email a subscriber sees, in every shipped language, with no English left.

The catalogues (``signalpost/locale/<language>/LC_MESSAGES/django.po``) are complete:
every entry translated and none fuzzy, the compiled ``.mo`` beside each in step with it,
and ``makemessages`` finds no string in the code that they lack. Then every public page
and every subscriber email is rendered in each language and read as a person would:
no English text of the catalogue (where its translation differs) and no common English
word may remain in what is shown, which catches a string someone forgot to wrap too.
"""

import html
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core import signing
from django.http import HttpResponse
from django.template import RequestContext, Template
from django.test import Client, RequestFactory
from django.utils import timezone, translation

from signalpost.accounts.models import Profile
from signalpost.newsletters import emails, links, tokens
from signalpost.newsletters.models import Subscription
from signalpost.newsletters.services import subscribe
from signalpost.newsletters.views import link_problem
from signalpost.publishing.models import Delivery, Issue
from signalpost.publishing.rendering import IssueMessages
from signalpost.publishing.services import issue_create
from signalpost.views import server_error
from tests.factories import make_newsletter, make_topic, make_user

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "signalpost" / "locale"
SHIPPED = [code for code, _ in settings.LANGUAGES if code != "en"]
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")
TAG = re.compile(r"<[^>]*>")
URL = re.compile(r"https?://\S+|/[\w./?=&%-]*")
# Words of English prose that none of the shipped languages uses as a word: text a
# template or a view forgot to wrap in {% translate %} or gettext shows them.
ENGLISH_WORDS = {"the", "your", "you", "and", "this", "with", "please", "our", "been", "here"}


def catalogue(language):
    return polib.pofile(str(LOCALE / language / "LC_MESSAGES" / "django.po"))


# ------------------------------------------------------------------ the catalogues


@pytest.mark.parametrize("language", SHIPPED)
def test_every_catalogue_entry_is_translated_and_none_is_fuzzy(language):
    po = catalogue(language)
    assert po.metadata["Language"] == language
    assert not po.metadata_is_fuzzy
    assert [entry.msgid for entry in po.untranslated_entries()] == []
    assert [entry.msgid for entry in po.fuzzy_entries()] == []
    assert [entry.msgid for entry in po.obsolete_entries()] == []


@pytest.mark.parametrize("language", SHIPPED)
def test_every_translation_keeps_the_placeholders_of_its_english(language):
    for entry in catalogue(language).translated_entries():
        expected = sorted(PLACEHOLDER.findall(entry.msgid))
        translations = entry.msgstr_plural.values() if entry.msgid_plural else [entry.msgstr]
        for translation_text in translations:
            assert sorted(PLACEHOLDER.findall(translation_text)) == expected, entry.msgid


@pytest.mark.parametrize("language", SHIPPED)
def test_the_compiled_catalogue_is_the_po_file_compiled(language):
    """A running site reads the .mo: it must say what the .po says (compilemessages)."""
    po = catalogue(language)
    mo = polib.mofile(str(LOCALE / language / "LC_MESSAGES" / "django.mo"))
    compiled = {(entry.msgctxt, entry.msgid): entry for entry in mo}
    for entry in po.translated_entries():
        found = compiled.get((entry.msgctxt, entry.msgid))
        assert found is not None, f"run compilemessages: {entry.msgid!r} is not in the .mo"
        assert (found.msgstr, found.msgstr_plural) == (entry.msgstr, entry.msgstr_plural), (
            f"run compilemessages: {entry.msgid!r} differs in the .mo"
        )
    assert len(compiled) == len(po.translated_entries())


def test_makemessages_finds_no_string_the_catalogues_lack(tmp_path):
    """``makemessages`` over a copy of the package adds nothing to the committed catalogue."""
    if shutil.which("xgettext") is None:
        message = "makemessages needs GNU gettext (apt-get install gettext; .ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: absent in CI", pytrace=False)
        pytest.skip(message)
    copy = tmp_path / "signalpost"
    shutil.copytree(
        ROOT / "signalpost",
        copy,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "static", "locale"),
    )
    (copy / "locale").mkdir()
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "makemessages", "-l", "de", "--no-location"],
        cwd=copy,
        check=True,
        capture_output=True,
    )
    found = {
        (e.msgctxt, e.msgid) for e in polib.pofile(str(copy / "locale/de/LC_MESSAGES/django.po"))
    }
    for language in SHIPPED:
        committed = {(e.msgctxt, e.msgid) for e in catalogue(language) if not e.obsolete}
        assert sorted(found - committed, key=str) == [], (
            f"strings missing from the {language} catalogue: run makemessages -l {language} "
            "(docs/languages.md) and translate them"
        )
        assert sorted(committed - found, key=str) == [], (
            f"the {language} catalogue has strings no code uses: run makemessages -l {language}"
        )


# ----------------------------------------------------------- reading what is shown


class _ShownText(HTMLParser):
    """The text a person reads on a page: its text and the attributes read aloud or shown."""

    SHOWN_ATTRIBUTES = {"alt", "title", "placeholder", "aria-label"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts = []
        self.hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in {"style", "script"}:
            self.hidden += 1
        for name, value in attrs:
            if name in self.SHOWN_ATTRIBUTES and value:
                self.parts.append(value)

    def handle_endtag(self, tag):
        if tag in {"style", "script"}:
            self.hidden -= 1

    def handle_data(self, data):
        if not self.hidden:
            self.parts.append(data)


def shown_pieces(content):
    """Each piece of text shown on a page, stripped, in order."""
    parser = _ShownText()
    parser.feed(content)
    return [" ".join(part.split()) for part in parser.parts if part.strip()]


def shown_text(content, *, is_html=True):
    if is_html:
        content = " ".join(shown_pieces(content))
    return " ".join(URL.sub(" ", html.unescape(content)).split())


def _english_fragments(language):
    """The English pieces (between placeholders and tags) of every catalogue entry whose
    translation does not contain them: each would show an untranslated string."""
    fragments = set()
    for entry in catalogue(language).translated_entries():
        translated = " ".join(entry.msgstr_plural.values()) if entry.msgid_plural else entry.msgstr
        for english in filter(None, [entry.msgid, entry.msgid_plural]):
            for piece in TAG.split(PLACEHOLDER.sub("\0", english)):
                for fragment in piece.split("\0"):
                    fragment = fragment.strip(" .,:;?!()")
                    if len(re.sub(r"\W", "", fragment)) >= 4 and fragment not in translated:
                        fragments.add(fragment)
    return fragments


def untranslated(text, language):
    """What in ``text`` (already reduced to what is shown) is English."""
    found = sorted(
        fragment
        for fragment in _english_fragments(language)
        if re.search(rf"(?<!\w){re.escape(fragment)}(?!\w)", text)
    )
    words = {word.lower() for word in re.findall(r"[A-Za-z_']+", text)}
    return found + sorted(words & ENGLISH_WORDS)


# ---------------------------------------------------------------- what is rendered

NEWSLETTER_NAME = "Kiosk 42"
DESCRIPTION = "Lorem ipsum dolor sit amet."


@pytest.fixture
def world(db):
    """A newsletter with a topic, a subscriber to it, a sent issue, one pending subscriber."""
    topic = make_topic(slug="kultur", name="Kultur")
    newsletter = make_newsletter(
        slug="kiosk",
        name=NEWSLETTER_NAME,
        description=DESCRIPTION,
        opt_in="double",
        topics=[topic],
    )
    make_newsletter(slug="nova", name="Nova 7")
    subscribe(email="zoe@example.com", newsletter=newsletter, source="admin", name="Zoë")
    subscribe(email="ana@example.com", newsletter=newsletter, source="form")
    issue = issue_create(newsletter=newsletter, subject="Nº 1", body_markdown=DESCRIPTION)
    Issue.objects.filter(pk=issue.pk).update(
        slug="n1", status=Issue.Status.SENT, sent_at=timezone.now()
    )
    return {
        "newsletter": newsletter,
        "issue": Issue.objects.get(pk=issue.pk),
        "zoe": Profile.objects.get(email="zoe@example.com"),
        "ana": Profile.objects.get(email="ana@example.com"),
        # A signed-in user of the site, on one newsletter, waiting on another, off the third.
        "member": _member_of(newsletter),
    }


def _member_of(newsletter):
    member = make_user(email="max@example.com")
    subscribe(email="max@example.com", newsletter=newsletter, source="admin")
    Profile.objects.filter(email="max@example.com").update(user=member)
    subscribe(
        email="max@example.com",
        newsletter=make_newsletter(slug="wait", name="Nova 7"),
        source="form",
    )
    return member


def _expired(purpose, profile, newsletter=None):
    real_timestamp = signing.TimestampSigner.timestamp
    signing.TimestampSigner.timestamp = lambda self: signing.b62_encode(
        signing.b62_decode(real_timestamp(self)) - 400 * 86400
    )
    try:
        return tokens.token_make(purpose=purpose, profile=profile, newsletter=newsletter)
    finally:
        signing.TimestampSigner.timestamp = real_timestamp


def pages(world, language, settings):
    """Every public page a subscriber can reach, as ``(what, response)``."""
    client = Client(HTTP_ACCEPT_LANGUAGE=language, raise_request_exception=False)
    zoe, ana, newsletter = world["zoe"], world["ana"], world["newsletter"]
    preferences = links.preferences_path(profile=zoe)
    confirm_ana = links.confirmation_path(profile=ana, newsletter=newsletter)
    confirm_zoe = links.confirmation_path(profile=zoe, newsletter=newsletter)
    one_click = links.unsubscribe_path(profile=zoe, newsletter=newsletter)
    yield "home", client.get("/")
    yield "subscribe", client.get("/subscribe/?newsletter=kiosk")
    yield "subscribe, empty", client.post("/subscribe/", {})
    yield (
        "subscribe, bad address",
        client.post("/subscribe/", {"user_email": "nobody", "newsletter": "nope"}),
    )
    yield (
        "subscribe, address at a host",
        client.post("/subscribe/", {"user_email": "a@localhost", "newsletter": "kiosk"}),
    )
    yield (
        "subscribe, too long",
        client.post(
            "/subscribe/", {"user_email": "a" * 250 + "@example.com", "newsletter": "kiosk"}
        ),
    )
    yield (
        "subscribe, done (double)",
        client.post("/subscribe/", {"user_email": "new@example.com", "newsletter": "kiosk"}),
    )
    yield (
        "subscribe, done (single)",
        client.post("/subscribe/", {"user_email": "new@example.com", "newsletter": "nova"}),
    )
    yield "unsubscribe", client.get("/unsubscribe/")
    yield "unsubscribe, empty", client.post("/unsubscribe/", {})
    yield (
        "unsubscribe, done",
        client.post("/unsubscribe/", {"user_email": "new@example.com", "newsletter": "nova"}),
    )
    yield "preference link", client.get("/preferences/")
    yield "preference link, empty", client.post("/preferences/", {})
    yield "preference link, sent", client.post("/preferences/", {"user_email": "zoe@example.com"})
    yield "preferences", client.get(preferences)
    yield "preferences, bad choice", client.post(preferences, {"newsletters": "nope"})
    yield "preferences, saved", client.post(preferences, {"name": "Zoë", "newsletters": "nova"})
    yield "preferences, left", client.post(preferences, {"leave_all": "1"})
    yield "confirm, pending", client.get(confirm_ana)
    yield "confirm, now", client.post(confirm_ana)
    yield "confirm, already", client.get(confirm_ana)
    yield "confirm, ended", client.get(confirm_zoe)
    yield "one-click", client.get(one_click)
    yield "one-click, done", client.post(one_click)
    yield "newsletter", client.get("/n/kiosk/")
    yield "newsletter, no issue", client.get("/n/nova/")
    yield "issue", client.get("/n/kiosk/n1/")
    yield "no such newsletter", client.get("/n/nothing/")
    yield "no such page", client.get("/nothing/here/")
    yield "bad link", client.get("/preferences/not-a-token/")
    yield "bad confirmation link", client.get("/n/kiosk/confirm/nope/")
    yield "bad unsubscribe link", client.get("/n/kiosk/unsubscribe/nope/")
    yield (
        "expired preference link",
        client.get(f"/preferences/{_expired(tokens.PREFERENCES, zoe)}/"),
    )
    yield (
        "expired confirmation link",
        client.get(f"/n/kiosk/confirm/{_expired(tokens.CONFIRM, ana, newsletter)}/"),
    )
    other = make_newsletter(slug="other", name="Orbis")
    kiosk_token = tokens.token_make(purpose=tokens.CONFIRM, profile=ana, newsletter=newsletter)
    yield "link of another newsletter", client.get(f"/n/other/confirm/{kiosk_token}/")
    yield (
        "form data in latin-1",
        client.post(
            "/subscribe/",
            "user_email=j%E9@example.com",
            content_type="application/x-www-form-urlencoded; charset=latin-1",
        ),
    )
    yield (
        "too many fields",
        client.post(
            "/subscribe/",
            "&".join(f"f{n}=x" for n in range(150)),
            content_type="application/x-www-form-urlencoded",
        ),
    )
    yield (
        "too large",
        client.post(
            "/subscribe/", "x=" + "y" * 70_000, content_type="application/x-www-form-urlencoded"
        ),
    )
    yield "language, unknown", client.post("/language/", {"language": "xx"})
    yield "language, missing", client.post("/language/", {})
    yield (
        "account toggle, signed out",
        client.post("/account/newsletters/", {"newsletter": "kiosk", "action": "subscribe"}),
    )
    member = Client(HTTP_ACCEPT_LANGUAGE=language, raise_request_exception=False)
    member.force_login(make_user(email="mia@example.com"))
    yield (
        "account toggle, bad form",
        member.post("/account/newsletters/", {"newsletter": "nope", "action": "x"}),
    )
    member.force_login(make_user(email=""))
    yield (
        "account toggle, no address",
        member.post("/account/newsletters/", {"newsletter": "kiosk", "action": "subscribe"}),
    )
    request = RequestFactory(HTTP_ACCEPT_LANGUAGE=language).get("/")
    with translation.override(language):
        for user in (AnonymousUser(), world["member"]):
            request.user = user
            component = Template("{% load signalpost_account %}{% your_newsletters %}").render(
                RequestContext(request)
            )
            page = f'<html lang="{language}"><body><main>{component}</main></body></html>'
            yield f"your newsletters, {user}", HttpResponse(page)
        yield (
            "link problem, mismatch",
            link_problem(request, problem="mismatch", newsletter=other, purpose="confirm"),
        )
        yield (
            "link problem, expired unsubscribe",
            link_problem(request, problem="expired", newsletter=None, purpose="unsubscribe"),
        )
        yield "server error", server_error(request)
    settings.SIGNALPOST_RATE_LIMITS = {**settings.SIGNALPOST_RATE_LIMITS, "subscribe_ip": "1/h"}
    client.post("/subscribe/", {"user_email": "r@example.com", "newsletter": "kiosk"})
    yield "too many requests", client.post("/subscribe/", {})


def subscriber_emails(world):
    """Every email a subscriber gets, as ``(what, subject, text, html)``."""
    for profile in (world["zoe"], world["ana"]):  # with a name, and without
        subscription = Subscription.objects.get(profile=profile)
        for what, message in [
            (
                "confirmation",
                emails.confirmation_message(subscription=subscription, idempotency_key="k"),
            ),
            ("welcome", emails.welcome_message(subscription=subscription, idempotency_key="k")),
            (
                "preference link",
                emails.preferences_link_message(profile=profile, idempotency_key="k"),
            ),
        ]:
            yield f"{what} to {profile.email}", message.subject, message.text, message.html
        issue = IssueMessages(world["issue"])
        delivery = Delivery(pk=profile.pk, issue=world["issue"], email=profile.email)
        message = issue.personalise(delivery, profile=profile)
        yield f"issue to {profile.email}", "", message.text, message.html


@pytest.mark.parametrize("language", SHIPPED)
def test_every_public_page_is_shown_in_the_readers_language(world, language, settings):
    left_in_english = {}
    for what, response in pages(world, language, settings):
        assert response.status_code < 500 or what == "server error", what
        content = response.content.decode()
        assert f'<html lang="{language}">' in content, what
        found = untranslated(shown_text(content), language)
        if found:
            left_in_english[what] = found
    assert left_in_english == {}


@pytest.mark.parametrize("language", SHIPPED)
def test_every_subscriber_email_is_written_in_its_newsletters_language(world, language):
    world["newsletter"].language = language
    world["newsletter"].save()
    left_in_english = {}
    with translation.override("en"):  # the worker's own language is not the email's
        for what, subject, text, body_html in subscriber_emails(world):
            assert f'<html lang="{language}">' in body_html, what
            found = untranslated(shown_text(subject, is_html=False), language)
            found += untranslated(shown_text(text, is_html=False), language)
            found += untranslated(shown_text(body_html), language)
            if found:
                left_in_english[what] = found
    assert left_in_english == {}


# What these pages show that is the same in every language: the data, names, languages.
SAME_IN_EVERY_LANGUAGE = {
    "Signalpost",
    NEWSLETTER_NAME,
    DESCRIPTION,
    "Nova 7",
    "Kultur",
    "Nº 1",
    "·",
    ",",
    ".",
    "English",
    "Deutsch",
    "Español",
    "Français",
    "zoe@example.com",
    "ana@example.com",
    "Zoë",
    "(JSON).",
}


@pytest.mark.parametrize("language", SHIPPED)
def test_no_piece_of_a_page_reads_the_same_as_in_english(world, language):
    """Catches a string nobody wrapped, even a single word such as a field's label: every
    piece of text a page shows in English and in ``language`` alike is data, or a
    catalogue entry whose translation is the English itself."""
    same_by_translation = {
        entry.msgid
        for entry in catalogue(language).translated_entries()
        if entry.msgstr == entry.msgid
    }
    zoe, ana, newsletter = world["zoe"], world["ana"], world["newsletter"]
    paths = [
        "/",
        "/subscribe/?newsletter=kiosk",
        "/unsubscribe/",
        "/preferences/",
        links.preferences_path(profile=zoe),
        links.confirmation_path(profile=ana, newsletter=newsletter),
        links.unsubscribe_path(profile=zoe, newsletter=newsletter),
        "/n/kiosk/",
        "/n/kiosk/n1/",
        "/n/nothing/",
        "/nothing/here/",
    ]
    same = {}
    for path in paths:
        english = set(shown_pieces(Client(HTTP_ACCEPT_LANGUAGE="en").get(path).content.decode()))
        shown = shown_pieces(Client(HTTP_ACCEPT_LANGUAGE=language).get(path).content.decode())
        alike = [
            piece
            for piece in shown
            if piece in english
            and re.search(r"[A-Za-z]", piece)
            and not set(piece.split(" · ")) <= SAME_IN_EVERY_LANGUAGE | same_by_translation
            and not re.fullmatch(r"[\d.,: ]+\w*", piece)  # a date or a number
        ]
        if alike:
            same[path] = alike
    assert same == {}
