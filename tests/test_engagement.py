"""Clicks and opens of an issue: tracked links in the real email, redirect, scanners, privacy."""

import re
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from signalpost.accounts.models import Profile
from signalpost.activity.models import Activity
from signalpost.engagement import selectors as engagement_selectors
from signalpost.engagement.models import Engagement, Hit
from signalpost.engagement.selectors import issue_report, profiles_engaged
from signalpost.engagement.services import hits_record_all
from signalpost.newsletters import tokens
from signalpost.newsletters.services import subscribe, subscription_end
from signalpost.privacy.services import profile_erase
from signalpost.publishing.models import Delivery, Issue
from signalpost.publishing.services import issue_create, issue_send
from signalpost.publishing.tracking import CLICK, OPEN, TokenSigner
from signalpost.signals import link_clicked
from signalpost.webhooks.models import WebhookMessage
from signalpost.webhooks.services import endpoint_create
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter
from tests.mail import html_part, text_part
from tests.recorders import SignalRecorder

pytestmark = pytest.mark.django_db(transaction=True)

BODY = (
    "Read [the first](https://example.com/a) and [the second](https://example.org/b?x=1&y=2).\n\n"
    "Write to [us](mailto:editors@example.com)."
)
LINKS = ["https://example.com/a", "https://example.org/b?x=1&y=2"]
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
TRACKED = re.compile(r"https://news\.example\.com/c/[A-Za-z0-9_.\-]+")


@pytest.fixture
def letter(db):
    return make_newsletter(slug="weekly", name="The Weekly")


def sent_issue(letter, smtp_inbox, people=("ann@example.com", "bob@example.com"), body=BODY):
    """Send an issue with two links to ``people``; return it and the messages they got."""
    for email in people:
        subscribe(email=email, newsletter=letter, source="admin")
    issue = issue_create(newsletter=letter, subject="Links", body_markdown=body)
    issue_send(issue=issue)
    run_worker_until_idle()
    issue.refresh_from_db()
    return issue, smtp_inbox.wait_for(len(people))


def tracked_paths(message):
    return [urlsplit(url).path for url in TRACKED.findall(html_part(message))]


def click(client, path, *, user_agent=BROWSER, **extra):
    return client.get(path, HTTP_USER_AGENT=user_agent, **extra)


def sent_a_minute_ago():
    Delivery.objects.update(sent_at=timezone.now() - timedelta(minutes=1))


def record_all():
    """Judge and record every hit now, as the workers' heartbeat does once they settled."""
    return hits_record_all(now=timezone.now() + timedelta(minutes=1))


# Tracked links in the real message ---------------------------------------------------------


def test_each_readers_html_links_go_through_the_site_with_their_own_tokens(letter, smtp_inbox):
    _issue, messages = sent_issue(letter, smtp_inbox)
    ann, bob = (tracked_paths(message) for message in messages)
    assert len(ann) == len(bob) == 2
    assert set(ann).isdisjoint(bob), "each reader's tokens are their own"
    for message in messages:
        html = html_part(message)
        assert "https://example.com/a" not in html
        assert "mailto:editors@example.com" in html, "only web links are tracked"
        assert "/unsubscribe/" in html or "/u/" in html or "unsubscribe" in html.lower()
        assert not TRACKED.search(message["List-Unsubscribe"])


def test_plain_text_part_shows_the_real_addresses_unless_the_newsletter_tracks_it(
    letter, smtp_inbox
):
    _issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    assert "https://example.com/a" in text_part(message)
    assert not TRACKED.search(text_part(message))


def test_plain_text_links_are_tracked_when_the_newsletter_says_so(letter, smtp_inbox):
    letter.track_plain_text_links = True
    letter.save()
    _issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    assert len(TRACKED.findall(text_part(message))) == 2
    assert "https://example.com/a" not in text_part(message)


def test_a_newsletter_without_click_tracking_sends_its_links_as_written(letter, smtp_inbox):
    letter.track_clicks = False
    letter.save()
    _issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    assert "https://example.org/b?x=1&amp;y=2" in html_part(message)
    assert tracked_paths(message) == []


# The redirect ---------------------------------------------------------------------------------


def test_a_tracked_link_redirects_to_the_issues_own_link(client, letter, smtp_inbox):
    _issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    first, second = tracked_paths(message)
    response = click(client, second)
    assert response.status_code == 302
    assert response["Location"] == LINKS[1]
    assert click(client, first)["Location"] == LINKS[0]
    assert Hit.objects.count() == 2, "each click is in the inbox, to be judged"


def unusable(response):
    return response.status_code == 400 and "This link does not work" in response.text


def test_a_tampered_token_gets_the_friendly_page_and_records_nothing(client, letter, smtp_inbox):
    _issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    path = tracked_paths(message)[0]
    value, signature = path.rsplit(".", 1)
    # Another link index with the first link's signature.
    issue_id, delivery_id, _index = value.removeprefix("/c/").split(".")
    assert unusable(click(client, f"/c/{issue_id}.{delivery_id}.1.{signature}"))
    assert unusable(click(client, path[:-1] + ("A" if path[-1] != "A" else "B")))
    assert unusable(click(client, path + "x"))
    assert Hit.objects.count() == 0


def test_foreign_tokens_get_the_friendly_page(client, letter, smtp_inbox, settings):
    issue, _messages = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    delivery = Delivery.objects.get()
    profile = Profile.objects.get()
    unsubscribe = tokens.token_make(purpose=tokens.UNSUBSCRIBE, profile=profile, newsletter=letter)
    opened = TokenSigner(OPEN).make(issue_id=issue.pk, delivery_id=delivery.pk, index="o")
    assert unusable(click(client, f"/c/{unsubscribe}"))
    assert unusable(click(client, f"/c/{opened}"))
    settings.SECRET_KEY = "another site's secret key, long enough to be a real one"
    elsewhere = TokenSigner(CLICK).make(issue_id=issue.pk, delivery_id=delivery.pk, index=0)
    settings.SECRET_KEY = "x" * 60
    assert unusable(click(client, f"/c/{elsewhere}"))
    assert Hit.objects.count() == 0


def test_a_genuine_token_for_a_link_the_issue_does_not_have_gets_the_friendly_page(
    client, letter, smtp_inbox
):
    issue, _messages = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    delivery = Delivery.objects.get()
    beyond = TokenSigner(CLICK).make(issue_id=issue.pk, delivery_id=delivery.pk, index=2)
    assert unusable(click(client, f"/c/{beyond}"))


@pytest.mark.parametrize(
    "token",
    ["", ".", "a.b.c.d", "x" * 5000, "%00%ff", "..%2F..%2Fetc", "ünïcode.1.1.sig", "1.1.1."],
    ids=["empty", "dot", "garbage", "oversized", "bytes", "traversal", "unicode", "unsigned"],
)
def test_malformed_tokens_get_the_friendly_page_never_a_500(client, db, token):
    response = click(client, f"/c/{token}")
    assert response.status_code in (400, 404)
    assert Hit.objects.count() == 0


def test_a_post_to_a_tracked_link_is_refused(client, letter, smtp_inbox):
    _issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    assert client.post(tracked_paths(message)[0]).status_code == 405
    assert Hit.objects.count() == 0


# Scanner filtering ----------------------------------------------------------------------------


def test_a_burst_on_every_link_within_a_second_is_a_machine_and_a_later_click_a_persons(
    client, letter, smtp_inbox
):
    issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    sent_a_minute_ago()
    first, second = tracked_paths(message)
    # The scanner: every link of the message at once, with a browser's user agent.
    click(client, first)
    click(client, second)
    record_all()
    assert set(Engagement.objects.values_list("is_human", "machine")) == {(False, "burst")}
    # The reader, a minute later, clicks one link.
    Hit.objects.all().delete()
    Engagement.objects.update(occurred_at=timezone.now() - timedelta(minutes=1))
    click(client, second)
    record_all()
    human = Engagement.objects.get(is_human=True)
    assert (human.link_index, human.is_first, human.machine) == (1, True, "")
    report = issue_report(issue=issue)
    assert (report.clicks.total, report.clicks.unique, report.clicks.filtered) == (1, 1, 2)


def test_a_click_within_seconds_of_delivery_is_a_machine(client, letter, smtp_inbox):
    _issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    click(client, tracked_paths(message)[0])
    record_all()
    assert Engagement.objects.get().machine == "early"


@pytest.mark.parametrize(
    "user_agent",
    [
        "Mozilla/5.0 (compatible; Barracuda Sentinel)",
        "Mimecast URL Protect",
        "python-requests/2.32",
        "",
    ],
)
def test_a_known_scanner_user_agent_is_a_machine(client, letter, smtp_inbox, user_agent):
    _issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    sent_a_minute_ago()
    response = click(client, tracked_paths(message)[0], user_agent=user_agent)
    assert response.status_code == 302, "a scanner still gets the redirect"
    record_all()
    assert Engagement.objects.get().machine == "scanner"


def test_a_head_request_is_answered_but_not_a_persons_click(client, letter, smtp_inbox):
    _issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    sent_a_minute_ago()
    response = client.head(tracked_paths(message)[0], HTTP_USER_AGENT=BROWSER)
    assert response.status_code == 302
    record_all()
    assert Engagement.objects.get().machine == "head"


def test_hits_wait_in_the_inbox_until_a_burst_could_be_complete(client, letter, smtp_inbox):
    _issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    click(client, tracked_paths(message)[0])
    assert hits_record_all(now=timezone.now()) == 0
    assert Hit.objects.count() == 1


# Signals, activity, webhooks ------------------------------------------------------------------


def test_a_persons_click_sends_link_clicked_and_enters_their_activity(client, letter, smtp_inbox):
    issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    sent_a_minute_ago()
    click(client, tracked_paths(message)[1])
    with SignalRecorder(link_clicked) as clicked:
        record_all()
    [call] = clicked.calls
    ann = Profile.objects.get(email="ann@example.com")
    assert (call["issue"], call["profile"], call["url"], call["is_human"]) == (
        issue,
        ann,
        LINKS[1],
        True,
    )
    activity = Activity.objects.get(profile=ann, event="link_clicked")
    assert activity.detail == {"issue": issue.pk, "url": LINKS[1]}


def test_each_persons_click_in_one_batch_enters_their_own_activity(client, letter, smtp_inbox):
    people = ["ann@example.com", "bob@example.com", "cy@example.com"]
    issue, messages = sent_issue(letter, smtp_inbox, people=people)
    sent_a_minute_ago()
    for index, message in enumerate(messages):
        click(client, tracked_paths(message)[index % 2])
    record_all()  # one batch: the activity rows are written together at its end
    trail = Activity.objects.filter(event="link_clicked").values_list("profile__email", "detail")
    expected = {}
    for message in messages:
        (email,) = [p for p in people if p in message["To"]]
        index = people.index(email) % 2
        expected[email] = {"issue": issue.pk, "url": LINKS[index]}
    assert dict(trail) == expected


def test_webhooks_get_human_clicks_only(client, letter, smtp_inbox, settings):
    settings.SIGNALPOST_WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    endpoint_create(url="http://127.0.0.1:9/in", events=["issue.clicked"])
    _issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    click(client, tracked_paths(message)[0])  # within seconds of delivery: a machine
    record_all()
    sent_a_minute_ago()
    Hit.objects.all().delete()
    click(client, tracked_paths(message)[0])
    record_all()
    run_worker_until_idle()
    [queued] = WebhookMessage.objects.filter(event="issue.clicked")
    assert queued.payload["data"]["human"] is True
    assert queued.payload["data"]["url"] == LINKS[0]


# Privacy --------------------------------------------------------------------------------------


def test_nothing_stored_names_the_clickers_address_or_user_agent(client, letter, smtp_inbox):
    from django.db import connection

    _issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    sent_a_minute_ago()
    agent = "Mozilla/5.0 DistinctiveBrowser/9.9"
    click(client, tracked_paths(message)[0], user_agent=agent, REMOTE_ADDR="203.0.113.77")
    stored = str(list(Hit.objects.values()))
    record_all()
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            stored += repr(cursor.fetchall())
    assert "DistinctiveBrowser" not in stored
    assert "203.0.113.77" not in stored


def test_erasing_a_person_removes_their_engagement_but_keeps_the_counts(client, letter, smtp_inbox):
    issue, messages = sent_issue(letter, smtp_inbox)
    sent_a_minute_ago()
    for message in messages:
        click(client, tracked_paths(message)[0])
    record_all()
    ann = Profile.objects.get(email="ann@example.com")
    assert Engagement.objects.filter(profile=ann).count() == 1
    profile_erase(profile=ann)
    assert Engagement.objects.filter(profile_id=ann.pk).count() == 0
    assert list(Engagement.objects.values_list("profile__email", flat=True).order_by("id")) in (
        [None, "bob@example.com"],
        ["bob@example.com", None],
    )
    report = issue_report(issue=issue)
    assert (report.clicks.total, report.clicks.unique) == (2, 2)


def test_unsubscribing_makes_a_persons_engagement_anonymous(client, letter, smtp_inbox):
    issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    sent_a_minute_ago()
    click(client, tracked_paths(message)[0])
    record_all()
    ann = Profile.objects.get(email="ann@example.com")
    assert list(profiles_engaged(issues=[issue]).values_list("profile_id", flat=True)) == [ann.pk]
    subscription_end(profile=ann, newsletter=letter, reason="bye")
    assert not Engagement.objects.filter(profile__isnull=False).exists()
    assert issue_report(issue=issue).clicks.total == 1


def test_a_counts_only_newsletter_keeps_no_per_person_row(client, letter, smtp_inbox):
    letter.engagement_aggregate_only = True
    letter.save()
    issue, messages = sent_issue(letter, smtp_inbox)
    sent_a_minute_ago()
    for message in messages:
        click(client, tracked_paths(message)[1])
    record_all()
    assert Engagement.objects.count() == 2
    assert not Engagement.objects.filter(profile__isnull=False).exists()
    assert not Activity.objects.filter(event="link_clicked").exists()
    [_first, second] = issue_report(issue=issue).links
    assert (second.url, second.clicks) == (LINKS[1], 2)


# Opens ----------------------------------------------------------------------------------------


def open_path(message):
    found = re.search(r"https://news\.example\.com(/o/[A-Za-z0-9_.\-]+\.gif)", html_part(message))
    return found.group(1) if found else None


def test_opens_are_off_by_default(letter, smtp_inbox):
    _issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    assert open_path(message) is None


@pytest.mark.parametrize(
    ("user_agent", "human"),
    [
        (BROWSER, True),
        ("Mozilla/5.0", False),  # Apple Mail Privacy Protection
        (
            "Mozilla/5.0 (Windows NT 5.1) Firefox/11.0 (via ggpht.com GoogleImageProxy)",
            False,
        ),
    ],
    ids=["reader", "apple-proxy", "google-proxy"],
)
def test_an_open_is_counted_by_its_pixel_and_proxies_are_machines(
    client, letter, smtp_inbox, user_agent, human
):
    letter.track_opens = True
    letter.save()
    _issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    sent_a_minute_ago()
    response = client.get(open_path(message), HTTP_USER_AGENT=user_agent)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif"
    assert "[Image" not in text_part(message), "the pixel stays out of the plain text"
    record_all()
    opened = Engagement.objects.get(kind="open")
    assert opened.is_human is human


# What the subscriber is told and given ----------------------------------------------------------


def preferences_page(client, email):
    profile = Profile.objects.get(email=email)
    token = tokens.token_make(purpose=tokens.PREFERENCES, profile=profile)
    return client.get(f"/preferences/{token}/")


def test_the_preference_center_says_what_each_newsletter_records(client, letter):
    subscribe(email="ann@example.com", newsletter=letter, source="admin")
    quiet = make_newsletter(slug="quiet", name="The Quiet", track_clicks=False)
    subscribe(email="ann@example.com", newsletter=quiet, source="admin")
    page = preferences_page(client, "ann@example.com").text
    assert "We count which links in its emails are followed." in page
    assert "No IP address or browser details are stored." in page
    assert "Nothing: its emails link straight to their pages" in page
    letter.engagement_aggregate_only = True
    letter.track_opens = True
    letter.save()
    page = preferences_page(client, "ann@example.com").text
    assert "whether its emails are opened" in page
    assert "never who it was" in page


def test_a_persons_data_export_lists_their_clicks(client, letter, smtp_inbox):
    from signalpost.privacy.services import profile_export

    _issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    sent_a_minute_ago()
    click(client, tracked_paths(message)[1])
    record_all()
    exported = profile_export(profile=Profile.objects.get(email="ann@example.com"))
    [clicked] = exported["engagement"]
    assert (clicked["kind"], clicked["link"], clicked["human"]) == ("click", LINKS[1], True)


# The report -----------------------------------------------------------------------------------


@pytest.fixture
def staff_client(client, db):
    from django.contrib.auth import get_user_model

    staff = get_user_model().objects.create_superuser("editor", "editor@example.com", "pw")
    client.force_login(staff)
    return client


def test_the_staff_report_shows_people_links_and_filtered_machines(
    client, staff_client, letter, smtp_inbox
):
    issue, messages = sent_issue(letter, smtp_inbox)
    sent_a_minute_ago()
    ann, bob = (tracked_paths(message) for message in messages)
    click(client, ann[1])
    click(client, bob[1], user_agent="Mimecast URL Protect")
    record_all()
    change = staff_client.get(f"/admin/publishing/issue/{issue.pk}/change/").text
    assert f"/admin/publishing/issue/{issue.pk}/report/" in change
    page = staff_client.get(f"/admin/publishing/issue/{issue.pk}/report/")
    assert page.status_code == 200
    text = page.text
    assert '<dd id="report-delivered">2</dd>' in text
    assert '<dd id="report-clicks">1</dd>' in text
    assert '<dd id="report-filtered-clicks">1</dd>' in text
    assert "https://example.org/b?x=1&amp;y=2" in text
    assert "<svg" in text


def test_the_links_csv_lists_each_link_with_its_counts(client, staff_client, letter, smtp_inbox):
    issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    sent_a_minute_ago()
    click(client, tracked_paths(message)[0])
    record_all()
    response = staff_client.get(f"/admin/publishing/issue/{issue.pk}/report/links.csv")
    assert response["Content-Type"].startswith("text/csv")
    assert response.content.decode().splitlines() == [
        "position,url,human_clicks,unique_people,filtered_clicks",
        "1,https://example.com/a,1,1,0",
        "2,https://example.org/b?x=1&y=2,0,0,0",
    ]


def test_the_report_needs_staff(client, letter, smtp_inbox):
    issue, _messages = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    for path in (
        f"/admin/publishing/issue/{issue.pk}/report/",
        f"/admin/publishing/issue/{issue.pk}/report/links.csv",
    ):
        response = client.get(path)
        assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_report_of_an_unknown_issue_is_not_found(staff_client):
    assert staff_client.get("/admin/publishing/issue/999999/report/").status_code == 404
    assert staff_client.get("/admin/publishing/issue/999999/report/links.csv").status_code == 404


def test_the_report_counts_unsubscribes_within_a_week_and_compares_with_earlier_issues(
    client, letter, smtp_inbox
):
    first, _messages = sent_issue(letter, smtp_inbox)
    second = issue_create(newsletter=letter, subject="Second", body_markdown=BODY)
    issue_send(issue=second)
    run_worker_until_idle()
    second.refresh_from_db()
    subscription_end(
        profile=Profile.objects.get(email="bob@example.com"), newsletter=letter, reason="bye"
    )
    report = issue_report(issue=second)
    assert report.unsubscribes == 1
    assert issue_report(issue=first).unsubscribes == 0, "the later issue is held responsible"
    assert [summary.issue for summary in report.previous] == [first]


# The API --------------------------------------------------------------------------------------


@pytest.fixture
def api_get(client, db):
    from signalpost.api.tokens import api_token_create

    token = api_token_create(name="reports")[1]

    def get(path):
        return client.get(f"/api/v1{path}", HTTP_AUTHORIZATION=f"Bearer {token}")

    return get


def test_the_api_reports_an_issue(client, api_get, letter, smtp_inbox):
    issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    sent_a_minute_ago()
    click(client, tracked_paths(message)[1])
    record_all()
    response = api_get(f"/issues/{issue.pk}/report")
    assert response.status_code == 200
    report = response.json()
    assert report["delivered"] == 1
    assert report["clicks"] == {"total": 1, "unique": 1, "filtered": 0}
    assert report["opens"] is None
    assert report["links"][1] == {
        "position": 2,
        "url": LINKS[1],
        "clicks": 1,
        "unique": 1,
        "filtered": 0,
    }
    assert len(report["clicks_by_hour"]) == 48
    assert sum(report["clicks_by_hour"]) == 1


@pytest.mark.parametrize("issue_id", ["999999", "0", "-1", "abc", "1" * 40])
def test_the_api_report_of_a_missing_or_malformed_id_is_a_clear_error(api_get, issue_id):
    response = api_get(f"/issues/{issue_id}/report")
    assert response.status_code in (404, 422, 400)
    assert response.status_code != 500


def test_the_api_report_needs_a_token(client, db):
    assert client.get("/api/v1/issues/1/report").status_code == 401


def test_the_report_is_in_the_openapi_document(client, db):
    document = client.get("/api/v1/openapi.json").json()
    assert "get" in document["paths"]["/api/v1/issues/{issue_id}/report"]


# The redirect's own path ---------------------------------------------------------------------


def test_a_redirect_costs_one_statement_once_its_issues_links_are_known(
    client, letter, smtp_inbox, django_assert_num_queries
):
    _issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    first, second = tracked_paths(message)
    assert click(client, first)["Location"] == LINKS[0]
    with django_assert_num_queries(1):  # the inbox insert; the links come from the process
        assert click(client, second)["Location"] == LINKS[1]
    assert Hit.objects.count() == 2


def test_the_kept_link_list_is_read_again_after_a_minute(client, letter, smtp_inbox, monkeypatch):
    issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    first = tracked_paths(message)[0]
    assert click(client, first)["Location"] == LINKS[0]
    Issue.objects.filter(pk=issue.pk).update(tracked_links=["https://example.net/moved"])
    assert click(client, first)["Location"] == LINKS[0], "kept for this process"
    later = time.monotonic() + engagement_selectors.LINKS_CACHE_SECONDS + 1
    monkeypatch.setattr(engagement_selectors.time, "monotonic", lambda: later)
    assert click(client, first)["Location"] == "https://example.net/moved"


def test_an_issue_without_links_yet_is_asked_again_each_time(client, letter, smtp_inbox):
    issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    first = tracked_paths(message)[0]
    Issue.objects.filter(pk=issue.pk).update(tracked_links=[])
    assert unusable(click(client, first))
    Issue.objects.filter(pk=issue.pk).update(tracked_links=LINKS)
    assert click(client, first)["Location"] == LINKS[0]


def test_a_link_list_holding_something_other_than_addresses_redirects_nowhere(
    client, letter, smtp_inbox
):
    issue, [message] = sent_issue(letter, smtp_inbox, people=["ann@example.com"])
    first, second = tracked_paths(message)
    Issue.objects.filter(pk=issue.pk).update(tracked_links=[{"url": LINKS[0]}, LINKS[1]])
    assert unusable(click(client, first))
    assert click(client, second)["Location"] == LINKS[1]
    assert Hit.objects.count() == 1
