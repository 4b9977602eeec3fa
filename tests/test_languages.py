"""A newsletter's language for its emails and pages; each reader's language on the site."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import translation

from signalpost.api.tokens import api_token_create
from signalpost.newsletters import emails, links
from signalpost.newsletters.models import Newsletter, Subscription
from signalpost.newsletters.services import subscribe
from signalpost.publishing.models import Issue
from signalpost.publishing.services import issue_create
from tests.durable_helpers import start_worker, stop
from tests.factories import make_newsletter, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def zeitung(db):
    return make_newsletter(slug="zeitung", name="Die Zeitung", language="de", opt_in="double")


@pytest.fixture
def plain(db):
    return make_newsletter(slug="plain", name="Plain", opt_in="double")


def confirmation(newsletter, email="ann@example.com"):
    subscription = subscribe(email=email, newsletter=newsletter, source="form")
    return emails.confirmation_message(subscription=subscription, idempotency_key="k")


def sent_issue(
    newsletter, *, slug="erste", sent_at=datetime.datetime(2026, 3, 5, 9, tzinfo=datetime.UTC)
):
    issue = issue_create(newsletter=newsletter, subject="Erste", body_markdown="Hallo.")
    Issue.objects.filter(pk=issue.pk).update(slug=slug, status=Issue.Status.SENT, sent_at=sent_at)
    return issue


# ------------------------------------------------------------------------------ emails


def test_a_newsletters_emails_are_in_its_language_whatever_the_worker_last_spoke(zeitung):
    with translation.override("fr"):
        message = confirmation(zeitung)
    assert message.subject == "Bestätigen Sie Ihr Abonnement für Die Zeitung"
    assert "Bitte bestätigen Sie, dass ann@example.com" in message.text
    assert '<html lang="de">' in message.html
    assert "Abonnement bestätigen" in message.html


def test_a_newsletter_without_a_language_mails_in_the_sites_default(plain, settings):
    settings.LANGUAGE_CODE = "es"
    with translation.override("fr"):
        message = confirmation(plain)
    assert message.subject == "Confirme su suscripción a Plain"
    assert "El enlace es válido durante 7 días." in message.text


def test_the_link_lifetime_is_said_in_the_singular_for_one_day(zeitung, settings):
    settings.SIGNALPOST_CONFIRMATION_MAX_AGE_SECONDS = 86400
    assert "Der Link ist 1 Tag lang gültig." in confirmation(zeitung).text


def test_the_preference_link_speaks_the_language_of_the_newsletters_received(zeitung, plain):
    subscription = subscribe(email="ann@example.com", newsletter=zeitung, source="admin")
    german = emails.preferences_link_message(profile=subscription.profile, idempotency_key="k")
    assert german.subject == "Ihr Link zur Verwaltung Ihrer Abonnements"
    subscribe(email="ann@example.com", newsletter=plain, source="admin")
    mixed = emails.preferences_link_message(profile=subscription.profile, idempotency_key="k")
    assert mixed.subject == "Your link to manage your subscriptions", "two languages: the site's"


def test_a_language_no_longer_offered_falls_back_to_the_sites_default(zeitung):
    Newsletter.objects.filter(pk=zeitung.pk).update(language="it")
    zeitung.refresh_from_db()
    assert confirmation(zeitung).subject == "Confirm your subscription to Die Zeitung"
    response = Client(HTTP_ACCEPT_LANGUAGE="es").get("/n/zeitung/")
    assert response.status_code == 200
    assert '<html lang="es">' in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_worker_process_sends_each_newsletter_in_its_own_language(
    smtp_inbox, settings, tmp_path, monkeypatch
):
    """A real db_worker whose site default is Spanish, sending for a French reader."""
    zeitung = make_newsletter(slug="zeitung", name="Die Zeitung", language="de", opt_in="double")
    make_newsletter(slug="plain", name="Plain", opt_in="double")
    port = settings.MAILERS["default"]["OPTIONS"]["port"]
    monkeypatch.setenv("EMAIL_URL", f"smtp://127.0.0.1:{port}")
    monkeypatch.setenv("SITE_URL", settings.SIGNALPOST_SITE_URL)
    monkeypatch.setenv("SITE_LANGUAGE", "es")
    reader = Client(HTTP_ACCEPT_LANGUAGE="fr")
    for slug in ("zeitung", "plain"):
        response = reader.post("/subscribe/", {"user_email": "ann@example.com", "newsletter": slug})
        assert "Consultez votre boîte de réception" in response.content.decode()

    worker = start_worker("polyglot", tmp_path)
    try:
        received = smtp_inbox.wait_for(2, timeout=60)
    finally:
        stop(worker)
    subjects = sorted(message["Subject"] for message in received)
    assert subjects == [
        "Bestätigen Sie Ihr Abonnement für Die Zeitung",
        "Confirme su suscripción a Plain",
    ]
    assert Subscription.objects.filter(newsletter=zeitung, status="pending").exists()


# ------------------------------------------------------------------------------- pages


def test_the_archive_and_issue_page_follow_the_newsletters_language(zeitung):
    sent_issue(zeitung)
    spanish_reader = Client(HTTP_ACCEPT_LANGUAGE="es")
    archive = spanish_reader.get("/n/zeitung/")
    page = archive.content.decode()
    assert '<html lang="de">' in page
    assert archive["Content-Language"] == "de"
    assert "<h2>Archiv</h2>" in page
    assert "5. März 2026" in page
    issue = spanish_reader.get("/n/zeitung/erste/").content.decode()
    assert '<html lang="de">' in issue and "5. März 2026" in issue
    assert "Die Zeitung abonnieren" in issue


def test_dates_follow_the_readers_language_on_a_newsletter_without_one(plain):
    sent_issue(plain)
    assert (
        "5 de marzo de 2026" in Client(HTTP_ACCEPT_LANGUAGE="es").get("/n/plain/").content.decode()
    )
    assert "March 5, 2026" in Client().get("/n/plain/").content.decode()


def test_the_one_click_unsubscribe_page_speaks_the_newsletters_language(zeitung):
    subscription = subscribe(email="ann@example.com", newsletter=zeitung, source="admin")
    path = links.unsubscribe_path(profile=subscription.profile, newsletter=zeitung)
    page = Client(HTTP_ACCEPT_LANGUAGE="en").get(path).content.decode()
    assert "Die Zeitung abbestellen" in page


def test_the_feed_is_marked_with_the_newsletters_language(zeitung):
    sent_issue(zeitung)
    feed = Client(HTTP_ACCEPT_LANGUAGE="fr").get("/n/zeitung/feed/").content.decode()
    assert 'xml:lang="de"' in feed


def test_pages_follow_the_browsers_language(db):
    page = Client(HTTP_ACCEPT_LANGUAGE="es-ES,es;q=0.9,en;q=0.5").get("/subscribe/")
    content = page.content.decode()
    assert '<html lang="es">' in content
    assert page["Content-Language"] == "es"
    assert "<h1>Suscribirse</h1>" in content
    assert 'lang="es" selected>Español</option>' in content


def test_a_browser_asking_for_no_shipped_language_gets_the_sites_default(db, settings):
    settings.LANGUAGE_CODE = "fr"
    page = Client(HTTP_ACCEPT_LANGUAGE="ja").get("/subscribe/").content.decode()
    assert '<html lang="fr">' in page and "<h1>S'abonner</h1>" in page


def test_the_switcher_sets_the_language_and_goes_back(db):
    client = Client(HTTP_ACCEPT_LANGUAGE="de")
    response = client.post("/language/", {"language": "es", "next": "/subscribe/"})
    assert response.status_code == 302
    assert response["Location"] == "/subscribe/"
    assert response.cookies["django_language"].value == "es"
    page = client.get("/subscribe/").content.decode()
    assert '<html lang="es">' in page, "the choice beats Accept-Language"


def test_the_switcher_never_sends_a_reader_to_another_site(db):
    response = Client().post("/language/", {"language": "de", "next": "https://evil.example/"})
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_the_switcher_needs_no_cookie_to_work(db):
    """The one-click unsubscribe page sets no cookie, and the switcher is on it too."""
    response = Client(enforce_csrf_checks=True).post("/language/", {"language": "fr"})
    assert response.status_code == 302
    assert response.cookies["django_language"].value == "fr"


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("xx", "language: &#x27;xx&#x27; is not a language of this site"),
        ("", "language is missing: choose one of en, de, es, fr."),
        ("   ", "language is missing"),
        ("de-DE", "language: &#x27;de-DE&#x27; is not a language of this site"),
        ("x" * 100_00, "language: &#x27;xxxxxxxxxxxxxxxxxxxx…&#x27; is not"),
        ("de\x00", "is not a language of this site"),
        ("<script>alert(1)</script>", "&#x27;&lt;script&gt;alert(1)&lt;/sc…&#x27;"),
    ],
)
def test_the_switcher_refuses_an_unknown_language_with_a_400_naming_the_field(db, value, said):
    response = Client().post("/language/", {"language": value, "next": "/"})
    assert response.status_code == 400
    assert said in response.content.decode()
    assert "django_language" not in response.cookies


def test_the_switcher_without_a_language_field_changes_nothing(db):
    response = Client().post("/language/", {"next": "/"})
    assert response.status_code == 400
    assert "language is missing" in response.content.decode()


def test_numbers_in_messages_are_grouped_the_readers_way(db):
    response = Client(HTTP_ACCEPT_LANGUAGE="de").post(
        "/subscribe/", "x=" + "y" * 70_000, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 413
    assert "70.002 Bytes; hier werden höchstens 65.536 angenommen" in response.content.decode()


def test_a_form_error_names_the_field_in_the_readers_language(db):
    response = Client(HTTP_ACCEPT_LANGUAGE="es").post("/subscribe/", {"newsletter": "x"})
    assert response.status_code == 400
    assert "Falta user_email: introduzca su dirección de correo electrónico." in (
        response.content.decode()
    )


# --------------------------------------------------------------- a newsletter's language


def test_a_newsletter_refuses_a_language_the_site_does_not_offer(db):
    newsletter = Newsletter(slug="x", name="X", language="xx")
    with pytest.raises(ValidationError) as refused:
        newsletter.full_clean()
    assert "language" in refused.value.message_dict


def test_the_admin_refuses_an_unknown_language_and_saves_nothing(client):
    client.force_login(make_user(is_staff=True, is_superuser=True))
    form = {"slug": "x", "name": "X", "opt_in": "double", "is_public": "on"}
    response = client.post("/admin/newsletters/newsletter/add/", {**form, "language": "xx"})
    assert response.status_code == 200
    assert "Select a valid choice. xx is not one of the available choices." in (
        response.content.decode()
    )
    assert not Newsletter.objects.exists()
    client.post("/admin/newsletters/newsletter/add/", {**form, "language": "es"})
    assert Newsletter.objects.get().language == "es"


def test_the_api_tells_each_newsletters_language(client, zeitung, plain):
    token = api_token_create(name="tests")[1]
    response = client.get("/api/v1/newsletters", HTTP_AUTHORIZATION=f"Bearer {token}")
    found = response.json()["items"]
    assert {n["slug"]: n["language"] for n in found} == {"plain": "", "zeitung": "de"}
