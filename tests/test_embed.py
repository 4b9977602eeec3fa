"""The subscribe form other websites embed: who may post it, what it does, what it answers.

The browser side (two loopback origins, the script, the iframe) is in
tests/browser/test_embed_in_browser.py.
"""

import json

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django_tasks_db.models import DBTaskResult

from signalpost.accounts.models import Profile
from signalpost.newsletters.embedding import embed_snippets
from signalpost.newsletters.models import Newsletter, Subscription
from signalpost.newsletters.origins import origin_normalize, origins_parse
from signalpost.signals import subscription_requested, user_subscribed
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter, make_user
from tests.recorders import SignalRecorder

pytestmark = pytest.mark.django_db

BLOG = "https://blog.example.org"
OTHER = "https://elsewhere.example.net"
URL = "/embed/weekly/"
JSON = "application/json"


@pytest.fixture
def weekly(db):
    """A single opt-in newsletter that lets BLOG carry its form."""
    return make_newsletter(slug="weekly", name="The Weekly", embed_allowed=True, embed_origins=BLOG)


def post(client, data, *, origin=BLOG, accept=None, url=URL, **headers):
    if origin is not None:
        headers["HTTP_ORIGIN"] = origin
    if accept is not None:
        headers["HTTP_ACCEPT"] = accept
    return client.post(url, data, **headers)


def sign_up(email="ada@example.com", **fields):
    return {"user_email": email, **fields}


def queued_subscriptions():
    return DBTaskResult.objects.filter(task_path__endswith="subscribe_from_form").count()


# --------------------------------------------------------------------- allowed origins


def test_origins_are_kept_in_the_form_browsers_send():
    assert origin_normalize("HTTPS://Blog.Example.org:443/") == "https://blog.example.org"
    assert origin_normalize("http://127.0.0.1:8001") == "http://127.0.0.1:8001"
    assert origin_normalize("https://bücher.de") == "https://xn--bcher-kva.de"
    assert origin_normalize("http://[::1]:8080") == "http://[::1]:8080"
    parsed = origins_parse(f"{BLOG}\n\n  https://BLOG.example.org/ \nhttp://localhost:3000")
    assert parsed == [BLOG, "http://localhost:3000"]


@pytest.mark.parametrize(
    "text",
    [
        "blog.example.org",
        "https://blog.example.org/subscribe",
        "https://blog.example.org?x=1",
        "https://user@blog.example.org",
        "ftp://blog.example.org",
        "javascript:alert(1)",
        "https://blog.example.org:99999",
        "https://",
        "null",
        "https://exa mple.org",
        "https://" + "x" * 400 + ".org",
    ],
)
def test_a_line_that_is_not_an_origin_is_refused_naming_it(text):
    with pytest.raises(ValidationError) as refused:
        origins_parse(f"{BLOG}\n{text}")
    assert "embed_origins" in refused.value.messages[0]
    assert text[:100] in refused.value.messages[0]


def test_staff_save_origins_normalised_and_a_bad_one_is_refused(admin_client, weekly):
    page = f"/admin/newsletters/newsletter/{weekly.pk}/change/"
    fields = {
        "name": "The Weekly",
        "slug": "weekly",
        "opt_in": "single",
        "is_public": "on",
        "embed_allowed": "on",
    }
    refused = admin_client.post(page, {**fields, "embed_origins": "blog.example.org/path"})
    assert refused.status_code == 200
    assert "blog.example.org/path is not an origin" in refused.content.decode()
    weekly.refresh_from_db()
    assert weekly.embed_origins == BLOG

    saved = admin_client.post(page, {**fields, "embed_origins": "HTTPS://Blog.Example.org/\r\n"})
    assert saved.status_code == 302
    weekly.refresh_from_db()
    assert weekly.embed_origins == BLOG


# --------------------------------------------------------------------- subscribing


@pytest.mark.django_db(transaction=True)
def test_a_listed_site_subscribes_by_double_opt_in_even_on_a_single_opt_in_newsletter(
    client, weekly, smtp_inbox
):
    assert weekly.opt_in == Newsletter.OptIn.SINGLE
    with (
        SignalRecorder(subscription_requested) as requested,
        SignalRecorder(user_subscribed) as subscribed,
    ):
        response = post(client, sign_up(name="Ada"))
        run_worker_until_idle()

    assert response.status_code == 200
    assert "Check your inbox" in response.content.decode()
    subscription = Subscription.objects.get(profile__email="ada@example.com")
    assert subscription.status == Subscription.Status.PENDING
    assert subscription.source == Subscription.Source.EMBED
    assert subscription.profile.name == "Ada"
    assert [call["source"] for call in requested.calls] == ["embed"]
    assert subscribed.calls == []
    [message] = smtp_inbox.messages
    assert message["To"] == "ada@example.com"
    assert "/n/weekly/confirm/" in message.get_body(("plain",)).get_content()


@pytest.mark.django_db(transaction=True)
def test_confirming_an_embedded_subscription_makes_it_active(client, weekly, smtp_inbox):
    post(client, sign_up())
    run_worker_until_idle()
    [message] = smtp_inbox.messages
    text = message.get_body(("plain",)).get_content()
    link = next(word for word in text.split() if "/n/weekly/confirm/" in word)
    path = link.removeprefix("https://news.example.com")
    assert client.post(path).status_code == 200
    subscription = Subscription.objects.get()
    assert subscription.status == Subscription.Status.ACTIVE
    assert subscription.source == Subscription.Source.EMBED


def test_a_listed_site_gets_cors_headers_for_its_exact_origin(client, weekly):
    response = post(client, sign_up(), accept=JSON)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == BLOG
    assert "Origin" in response["Vary"]
    assert "Access-Control-Allow-Credentials" not in response
    body = json.loads(response.content)
    assert body["status"] == "confirmation_sent"
    assert "ada@example.com" in body["message"] and "The Weekly" in body["message"]


def test_the_landing_page_links_back_to_the_page_of_a_listed_site(client, weekly):
    response = post(client, sign_up(), HTTP_REFERER=f"{BLOG}/about/newsletter?x=1&y=<2>")
    page = response.content.decode()
    assert f'href="{BLOG}/about/newsletter?x=1&amp;y=&lt;2&gt;"' in page
    assert "Back to blog.example.org" in page


def test_without_a_whole_referer_the_link_goes_to_the_sites_home_page(client, weekly):
    page = post(client, sign_up(), HTTP_REFERER=f"{BLOG}/").content.decode()
    assert f'href="{BLOG}/"' in page
    page = post(client, sign_up(), HTTP_REFERER=f"{OTHER}/trick").content.decode()
    assert f'href="{BLOG}/"' in page and OTHER not in page


def test_a_site_not_on_the_list_is_refused_and_nothing_is_queued(client, weekly):
    response = post(client, sign_up(), origin=OTHER)
    assert response.status_code == 403
    page = response.content.decode()
    assert "origin: this newsletter does not take subscriptions from the page" in page
    assert "Access-Control-Allow-Origin" not in response
    assert OTHER not in page  # no link back
    assert queued_subscriptions() == 0

    response = post(client, sign_up(), origin=OTHER, accept=JSON)
    assert response.status_code == 403
    assert json.loads(response.content)["errors"][0]["field"] == "origin"
    assert "Access-Control-Allow-Origin" not in response


@pytest.mark.parametrize(
    "headers",
    [{}, {"HTTP_ORIGIN": "null"}, {"HTTP_REFERER": "not a url"}, {"HTTP_ORIGIN": "x" * 5000}],
    ids=["none", "null", "bad referer", "huge"],
)
def test_a_request_naming_no_origin_is_refused_when_origins_are_listed(client, weekly, headers):
    response = post(client, sign_up(), origin=None, **headers)
    assert response.status_code == 403
    assert queued_subscriptions() == 0


def test_the_referer_names_the_origin_when_the_browser_sent_no_origin(client, weekly):
    response = post(client, sign_up(), origin=None, HTTP_REFERER=f"{BLOG}/post/1")
    assert response.status_code == 200
    assert queued_subscriptions() == 1


def test_with_no_origins_listed_any_site_may_post_the_plain_form_but_gets_no_more(client, weekly):
    Newsletter.objects.filter(pk=weekly.pk).update(embed_origins="")
    response = post(client, sign_up(), origin=OTHER, HTTP_REFERER=f"{OTHER}/page")
    assert response.status_code == 200
    assert queued_subscriptions() == 1
    assert "Access-Control-Allow-Origin" not in response
    assert OTHER not in response.content.decode()  # no link back
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


def test_a_newsletter_that_does_not_allow_embedding_refuses(client, weekly):
    Newsletter.objects.filter(pk=weekly.pk).update(embed_allowed=False)
    response = post(client, sign_up())
    assert response.status_code == 403
    assert "newsletter: this newsletter does not take subscriptions from other websites" in (
        response.content.decode()
    )
    response = post(client, sign_up(), accept=JSON)
    assert json.loads(response.content)["errors"][0]["field"] == "newsletter"
    assert "Access-Control-Allow-Origin" not in response
    assert queued_subscriptions() == 0
    assert client.get(URL).status_code == 403


@pytest.mark.parametrize(
    "url", ["/embed/private/", "/embed/nothing/", "/embed/" + "x" * 300 + "/", "/embed/%00/"]
)
def test_a_private_or_unknown_newsletter_is_not_found(client, weekly, url):
    make_newsletter(slug="private", is_public=False, embed_allowed=True, embed_origins=BLOG)
    response = post(client, sign_up(), url=url)
    assert response.status_code == 404
    assert "newsletter: there is no public newsletter at this address" in (
        response.content.decode()
    )
    assert client.get(url).status_code == 404
    assert queued_subscriptions() == 0


# --------------------------------------------------------------------- bad input


def test_a_script_post_without_the_fields_gets_json_naming_them(client, weekly):
    response = post(client, {}, accept=JSON)
    assert response.status_code == 400
    assert response["Access-Control-Allow-Origin"] == BLOG  # so the script can read why
    errors = json.loads(response.content)["errors"]
    assert errors == [
        {"field": "user_email", "message": "user_email is missing: enter your email address."}
    ]
    assert queued_subscriptions() == 0


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (sign_up("not-an-address"), "user_email"),
        (sign_up("a" * 300 + "@example.com"), "user_email"),
        (sign_up(name="x" * 201), "name"),
        (sign_up("ada@example.com\r\nBcc: victim@example.com"), "user_email"),
        (sign_up(name="<script>alert(1)</script>\x00"), "name"),
    ],
)
def test_bad_fields_get_a_400_naming_the_field_and_change_nothing(client, weekly, data, field):
    response = post(client, data, accept=JSON)
    assert response.status_code == 400
    assert [error["field"] for error in json.loads(response.content)["errors"]] == [field]

    page = post(client, data)
    assert page.status_code == 400
    text = page.content.decode()
    assert f"<code>{field}</code>" in text
    assert "<script>alert(1)" not in text
    assert queued_subscriptions() == 0
    assert not Profile.objects.exists()


def test_the_form_page_after_a_mistake_posts_back_here_from_this_site(client, weekly):
    page = post(client, sign_up("nope")).content.decode()
    assert f'action="{URL}"' in page
    response = post(client, sign_up(), origin="http://testserver")
    assert response.status_code == 200
    assert queued_subscriptions() == 1


def test_a_filled_honeypot_gets_the_same_answer_and_queues_nothing(client, weekly):
    human = post(client, sign_up(), accept=JSON)
    bot = post(client, sign_up(website="https://spam.example"), accept=JSON)
    assert bot.status_code == human.status_code == 200
    assert bot.content == human.content
    assert queued_subscriptions() == 1


@pytest.mark.django_db(transaction=True)
def test_one_address_gets_one_confirmation_however_often_it_is_posted(
    client, weekly, smtp_inbox, settings
):
    settings.SIGNALPOST_RATE_LIMITS = {key: "0" for key in settings.SIGNALPOST_RATE_LIMITS}
    for _ in range(5):
        assert post(client, sign_up()).status_code == 200
    run_worker_until_idle()
    assert len(smtp_inbox.messages) == 1


def test_the_address_limit_is_shared_with_the_sites_own_form(client, weekly, settings):
    settings.SIGNALPOST_RATE_LIMITS = {**settings.SIGNALPOST_RATE_LIMITS}
    settings.SIGNALPOST_RATE_LIMITS["subscribe_address"] = "2/h"
    client.post("/subscribe/", {"user_email": "ada@example.com", "newsletter": "weekly"})
    post(client, sign_up())
    answer = post(client, sign_up())  # the third: answered alike, queued not
    assert answer.status_code == 200
    assert queued_subscriptions() == 2


def test_one_client_is_limited_across_both_forms(client, weekly, settings):
    settings.SIGNALPOST_RATE_LIMITS = {**settings.SIGNALPOST_RATE_LIMITS}
    settings.SIGNALPOST_RATE_LIMITS["subscribe_ip"] = "2/h"
    client.post("/subscribe/", {"user_email": "a@example.com", "newsletter": "weekly"})
    assert post(client, sign_up("b@example.com")).status_code == 200
    limited = post(client, sign_up("c@example.com"), accept=JSON)
    assert limited.status_code == 429
    assert limited["Retry-After"] == "3600"
    assert limited["Access-Control-Allow-Origin"] == BLOG
    assert "Too many" in json.loads(limited.content)["errors"][0]["message"]
    assert post(client, sign_up("d@example.com")).status_code == 429
    assert queued_subscriptions() == 2


def test_a_preflight_is_answered_for_a_listed_site_only(client, weekly):
    listed = client.options(URL, HTTP_ORIGIN=BLOG, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert listed.status_code == 204
    assert listed["Access-Control-Allow-Origin"] == BLOG
    assert "POST" in listed["Access-Control-Allow-Methods"]
    other = client.options(URL, HTTP_ORIGIN=OTHER, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert "Access-Control-Allow-Origin" not in other
    assert queued_subscriptions() == 0


# --------------------------------------------------------------------- the iframe form


def test_the_iframe_form_may_be_framed_by_listed_sites_only(client, weekly):
    response = client.get(URL)
    assert response.status_code == 200
    assert "X-Frame-Options" not in response
    policy = response["Content-Security-Policy"]
    assert f"frame-ancestors {BLOG}" in policy
    page = response.content.decode()
    assert 'name="frame" value="1"' in page
    assert f'action="{URL}"' in page
    assert "csrfmiddlewaretoken" not in page  # a framed page gets no cookie to match


def test_the_iframe_forms_answer_stays_frameable_and_bare(client, weekly):
    response = post(client, sign_up(frame="1"), origin="http://testserver")
    assert response.status_code == 200
    assert "X-Frame-Options" not in response
    assert f"frame-ancestors {BLOG}" in response["Content-Security-Policy"]
    assert 'class="brand"' not in response.content.decode()  # no site navigation in a frame


def test_the_sites_other_pages_still_refuse_framing(client, weekly):
    response = client.get("/subscribe/")
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


# --------------------------------------------------------------------- the staff snippets


def test_snippets_name_the_newsletters_real_urls(weekly, settings):
    settings.SIGNALPOST_SITE_URL = "https://news.example.com"
    snippets = embed_snippets(weekly)
    action = 'action="https://news.example.com/embed/weekly/"'
    assert action in snippets["form"] and action in snippets["script"]
    assert "<script" not in snippets["form"]
    assert 'src="https://news.example.com/static/signalpost/embed.js"' in snippets["script"]
    assert 'src="https://news.example.com/embed/weekly/"' in snippets["iframe"]
    for snippet in snippets.values():
        assert "csrf" not in snippet


def test_the_script_is_small_and_loads_nothing_else():
    script = (settings.BASE_DIR / "signalpost" / "static" / "signalpost" / "embed.js").read_text()
    assert len(script.encode()) < 4096
    assert "import" not in script and "http" not in script
    assert "data-failed" in embed_snippets(make_newsletter())["script"]


def test_a_hostile_newsletter_name_is_escaped_in_the_snippets_and_on_the_page(admin_client, weekly):
    Newsletter.objects.filter(pk=weekly.pk).update(name='Evil "</textarea><script>x()</script>')
    weekly.refresh_from_db()
    snippets = embed_snippets(weekly)
    assert "Evil &quot;&lt;/textarea&gt;&lt;script&gt;x()&lt;/script&gt;" in snippets["form"]
    assert "<script>x()" not in "".join(snippets.values())

    page = admin_client.get(f"/admin/newsletters/newsletter/{weekly.pk}/embed/")
    text = page.content.decode()
    assert page.status_code == 200
    assert "</textarea><script>x()" not in text
    # In the textarea the snippet is escaped once more: the box holds the snippet itself.
    assert "Evil &amp;quot;&amp;lt;/textarea&amp;gt;" in text


def test_staff_see_three_snippets_and_copy_buttons_that_need_javascript(admin_client, weekly):
    change = admin_client.get(f"/admin/newsletters/newsletter/{weekly.pk}/change/")
    assert f"/admin/newsletters/newsletter/{weekly.pk}/embed/" in change.content.decode()
    page = admin_client.get(f"/admin/newsletters/newsletter/{weekly.pk}/embed/")
    text = page.content.decode()
    for key in ("form", "script", "iframe"):
        assert f'<textarea id="snippet-{key}"' in text
        assert f'data-copy="snippet-{key}" hidden' in text
    assert "signalpost/copy.js" in text


def test_staff_without_view_permission_get_no_snippets(client, weekly):
    client.force_login(make_user(is_staff=True))
    response = client.get(f"/admin/newsletters/newsletter/{weekly.pk}/embed/")
    assert response.status_code == 403


def test_the_snippets_page_of_an_unknown_newsletter_is_not_found(admin_client):
    assert admin_client.get("/admin/newsletters/newsletter/999/embed/").status_code == 404
    assert admin_client.get("/admin/newsletters/newsletter/x%00/embed/").status_code == 404
