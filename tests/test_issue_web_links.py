"""The "read it on the web" link in every issue email leads somewhere."""

import re
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from signalpost.newsletters.services import subscribe
from signalpost.publishing.models import Issue
from signalpost.publishing.services import issue_create, issue_send
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter
from tests.mail import html_part, text_part

pytestmark = pytest.mark.django_db(transaction=True)


def sent_to_one_reader(newsletter, subject="Going out"):
    subscribe(email="ann@example.com", newsletter=newsletter, source="admin")
    issue = issue_create(newsletter=newsletter, subject=subject, body_markdown="Hello.")
    issue_send(issue=issue)
    return Issue.objects.get(pk=issue.pk)


def test_the_web_version_is_there_while_the_issue_is_still_going_out(client):
    issue = sent_to_one_reader(make_newsletter(slug="weekly"))
    # No worker has run: the issue is mid-send, as it is for hours at a limited rate.
    assert issue.status == Issue.Status.SENDING
    page = client.get(f"/n/weekly/{issue.slug}/")
    assert page.status_code == 200
    assert "Going out" in page.content.decode()


def test_the_link_in_the_email_opens_the_issue(client, smtp_inbox):
    sent_to_one_reader(make_newsletter(slug="weekly"))
    run_worker_until_idle()
    [message] = smtp_inbox.wait_for(1)

    link = re.search(r"read it on the web: (\S+)", text_part(message))[1]
    assert client.get(urlsplit(link).path).status_code == 200
    assert link in html_part(message)


def test_a_private_newsletters_email_offers_no_web_link(client, smtp_inbox):
    issue = sent_to_one_reader(make_newsletter(slug="staff-only", is_public=False))
    run_worker_until_idle()
    [message] = smtp_inbox.wait_for(1)

    assert "on the web" not in text_part(message).lower()
    assert "on the web" not in html_part(message).lower()
    assert client.get(f"/n/staff-only/{issue.slug}/").status_code == 404


def test_a_draft_has_no_web_version(client):
    newsletter = make_newsletter(slug="weekly")
    draft = issue_create(newsletter=newsletter, subject="Not yet", body_markdown="Soon.")
    assert client.get(f"/n/weekly/{draft.slug}/").status_code == 404


@pytest.mark.parametrize("count", [3, 30])
def test_the_feed_reads_the_same_number_of_rows_however_many_issues(client, count):
    newsletter = make_newsletter(slug="weekly")
    for number in range(count):
        issue = issue_create(newsletter=newsletter, subject=f"Issue {number}", body_markdown="x")
        Issue.objects.filter(pk=issue.pk).update(status=Issue.Status.SENT)
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/n/weekly/feed/").status_code == 200
    assert len(queries) <= 3, [query["sql"] for query in queries]
