"""Subscribers in the admin: search and filters, the profile page's actions, CSV import
with progress and its rejected rows, export. Everything goes through the services."""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from signalpost.accounts.models import Profile
from signalpost.activity.models import Activity
from signalpost.newsletters.models import SubscriberImport, Subscription
from signalpost.newsletters.services import subscribe
from tests.durable_helpers import run_worker_until_idle
from tests.factories import make_newsletter, make_user

pytestmark = pytest.mark.django_db(transaction=True)

SUBSCRIPTIONS = "/admin/newsletters/subscription/"
IMPORTS = "/admin/newsletters/subscriberimport/"


@pytest.fixture(autouse=True)
def private_files():
    """Delete what the test's imports stored (the private storage of settings)."""
    yield
    for job in SubscriberImport.objects.all():
        job.file.delete(save=False)
        job.report.delete(save=False)


@pytest.fixture
def staff(client):
    client.force_login(make_user(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def weekly():
    return make_newsletter(slug="weekly", name="The Weekly")


def listed(client, query=""):
    response = client.get(SUBSCRIPTIONS + query)
    assert response.status_code == 200
    return sorted(s.profile.email for s in response.context["cl"].result_list)


def test_staff_find_subscribers_by_address_or_name(staff, weekly):
    subscribe(email="ann@example.com", name="Ann Lee", newsletter=weekly, source="admin")
    subscribe(email="bob@example.com", name="Bob Stone", newsletter=weekly, source="admin")

    assert listed(staff, "?q=stone") == ["bob@example.com"]
    assert listed(staff, "?q=ann@") == ["ann@example.com"]


def test_staff_filter_subscribers_by_newsletter_status_source_date_and_attribute(staff, weekly):
    other = make_newsletter(slug="other")
    subscribe(email="ann@example.com", newsletter=weekly, source="admin")
    subscribe(email="bob@example.com", newsletter=weekly, source="form")
    subscribe(email="cat@example.com", newsletter=other, source="admin")
    Profile.objects.filter(email="ann@example.com").update(attributes={"plan": "pro"})
    Profile.objects.filter(email="bob@example.com").update(attributes={"plan": "free"})

    assert listed(staff, f"?newsletter__id__exact={other.pk}") == ["cat@example.com"]
    assert listed(staff, "?source__exact=form") == ["bob@example.com"]
    assert listed(staff, "?status__exact=active&source__exact=admin") == [
        "ann@example.com",
        "cat@example.com",
    ]
    assert len(listed(staff, "?created_at__gte=2000-01-01T00:00:00%2B00:00")) == 3
    assert listed(staff, "?attribute=plan%3Dpro") == ["ann@example.com"]
    assert listed(staff, "?attribute=plan") == ["ann@example.com", "bob@example.com"]


@pytest.mark.parametrize(
    "value", ["plan__contains=x", "a'b", "x" * 400, "=pro", "plan=" + "\x00", "..%2F"]
)
def test_a_malformed_attribute_filter_is_refused_without_an_error_page(staff, weekly, value):
    subscribe(email="ann@example.com", newsletter=weekly, source="admin")

    response = staff.get(SUBSCRIPTIONS, {"attribute": value})

    assert response.status_code in {200, 302}
    if response.status_code == 302:
        assert "e=1" in response["Location"]


def test_the_profile_page_lists_every_subscription_and_the_activity_trail(staff, weekly):
    other = make_newsletter(slug="other", name="The Other", opt_in="double")
    subscribe(email="ann@example.com", newsletter=weekly, source="admin")
    subscribe(email="ann@example.com", newsletter=other, source="form")
    profile = Profile.objects.get(email="ann@example.com")

    page = staff.get(f"/admin/accounts/profile/{profile.pk}/change/").content.decode()

    assert "Subscriptions and staff actions" in page
    assert page.count("Resend confirmation") == 1  # only the pending one
    assert page.count(">Unsubscribe</button>") == 2
    assert "Activity trail" in page and "Subscription requested" in page and "Subscribed" in page
    assert "Erase this person" in page


def test_staff_unsubscribe_someone_from_the_profile_page_through_the_service(staff, weekly):
    subscription = subscribe(email="ann@example.com", newsletter=weekly, source="admin")
    profile = subscription.profile

    response = staff.post(
        f"/admin/accounts/profile/{profile.pk}/subscriptions/{subscription.pk}/unsubscribe/",
        follow=True,
    )

    assert "Unsubscribed from The Weekly." in response.content.decode()
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.UNSUBSCRIBED
    assert "by staff" in subscription.unsubscribe_reason
    assert Activity.objects.filter(profile=profile, event="unsubscribed").exists()


def test_staff_resend_a_confirmation_that_arrives_by_email(staff, smtp_inbox):
    careful = make_newsletter(slug="careful", name="The Careful", opt_in="double")
    subscription = subscribe(email="ann@example.com", newsletter=careful, source="form")
    run_worker_until_idle()
    assert len(smtp_inbox.wait_for(1)) == 1

    response = staff.post(
        f"/admin/accounts/profile/{subscription.profile_id}/subscriptions/"
        f"{subscription.pk}/resend/",
        follow=True,
    )
    run_worker_until_idle()

    assert "on its way" in response.content.decode()
    messages = smtp_inbox.wait_for(2)
    assert [m["To"] for m in messages] == ["ann@example.com", "ann@example.com"]


def test_profile_actions_refuse_get_unknown_actions_and_staff_without_permission(client, weekly):
    subscription = subscribe(email="ann@example.com", newsletter=weekly, source="admin")
    base = f"/admin/accounts/profile/{subscription.profile_id}/subscriptions/{subscription.pk}"
    client.force_login(make_user(is_staff=True, is_superuser=True))
    assert client.get(f"{base}/unsubscribe/").status_code == 405
    assert client.post(f"{base}/explode/").status_code == 403
    assert client.post("/admin/accounts/profile/x/subscriptions/1/resend/").status_code == 404
    other = make_newsletter()
    stranger = subscribe(email="bob@example.com", newsletter=other, source="admin")
    wrong = f"/admin/accounts/profile/{subscription.profile_id}/subscriptions/{stranger.pk}"
    assert client.post(f"{wrong}/unsubscribe/").status_code == 404
    client.force_login(make_user(is_staff=True))
    assert client.post(f"{base}/unsubscribe/").status_code == 403
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ACTIVE


def test_erasing_from_the_profile_page_removes_the_person(staff, weekly):
    subscription = subscribe(email="ann@example.com", newsletter=weekly, source="admin")

    url = f"/admin/accounts/profile/{subscription.profile_id}/erase/"
    assert "Yes, erase ann@example.com" in staff.get(url).content.decode()
    assert Profile.objects.filter(email="ann@example.com").exists(), "asked first"

    response = staff.post(url, follow=True)

    assert "Erased ann@example.com" in response.content.decode()
    assert not Profile.objects.filter(email="ann@example.com").exists()
    assert not Subscription.objects.exists()
    assert staff.post("/admin/accounts/profile/abc/erase/").status_code == 404


# Import


def test_an_upload_named_with_control_characters_gets_a_clean_name(staff, weekly):
    upload(staff, b"email\na@example.com\n", newsletter=weekly, name="a\x00b\x1b.csv")
    assert SubscriberImport.objects.get().file_name == "ab.csv"


def upload(client, content, *, newsletter, name="people.csv", confirm=False):
    data = {"newsletter": newsletter.pk, "file": SimpleUploadedFile(name, content, "text/csv")}
    if confirm:
        data["confirm"] = "on"
    return client.post(IMPORTS + "add/", data)


def test_a_csv_imported_in_the_browser_runs_on_the_worker_with_a_report(staff, weekly):
    subscribe(email="old@example.com", newsletter=weekly, source="admin")
    content = (
        b"email,name\nann@example.com,Ann\nnot-an-address,Bad\nold@example.com,Old\n=1+2,Formula\n"
    ) + "caf\xe9@example.com,Latin\n".encode("latin-1")

    response = upload(staff, content, newsletter=weekly)

    job = SubscriberImport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"{IMPORTS}{job.pk}/change/"
    assert (job.status, job.lines, job.file_name) == ("queued", 5, "people.csv")
    page = staff.get(response["Location"]).content.decode()
    assert 'id="import-bar"' in page and "Update every second" in page

    run_worker_until_idle()

    job.refresh_from_db()
    assert (job.status, job.rows, job.imported, job.duplicates, job.rejected) == (
        "done", 5, 1, 1, 3,
    )  # fmt: skip
    assert not job.file, "the upload is deleted once imported"
    assert Subscription.objects.filter(profile__email="ann@example.com").exists()
    page = staff.get(f"{IMPORTS}{job.pk}/change/").content.decode()
    assert "data-refresh-done" in page and "Download the 3 rejected rows" in page
    report = staff.get(f"{IMPORTS}{job.pk}/rejected.csv")
    assert report["Content-Disposition"] == 'attachment; filename="people.rejected.csv"'
    rows = list(csv.reader(io.StringIO(b"".join(report.streaming_content).decode())))
    assert rows[0] == ["line", "email", "reason"]
    assert [row[0] for row in rows[1:]] == ["3", "5", "6"]
    assert rows[2][1] == "'=1+2"  # a formula is never handed to a spreadsheet
    assert "not UTF-8" in rows[3][2]


def test_a_csv_without_an_email_column_ends_refused_with_the_reason(staff, weekly):
    upload(staff, b"name,phone\nAnn,123\n", newsletter=weekly)
    run_worker_until_idle()

    job = SubscriberImport.objects.get()
    assert job.status == "failed"
    page = staff.get(f"{IMPORTS}{job.pk}/change/").content.decode()
    assert "no email column" in page
    assert staff.get(f"{IMPORTS}{job.pk}/rejected.csv").status_code == 404


@pytest.mark.parametrize(
    ("content", "name", "error"),
    [
        (b"", "empty.csv", "The submitted file is empty."),
        (b"email\n" + b"a@example.com\n" * 400_000, "big.csv", "at most 5,242,880"),
    ],
    ids=["empty", "oversized"],
)
def test_an_unimportable_upload_is_refused_on_the_field(staff, weekly, content, name, error):
    response = upload(staff, content, newsletter=weekly, name=name)

    assert response.status_code == 400
    assert error in " ".join(response.context["form"].errors["file"])
    assert not SubscriberImport.objects.exists()


def test_an_import_form_without_file_or_newsletter_names_the_fields(staff):
    response = staff.post(IMPORTS + "add/", {"newsletter": "999"})

    assert response.status_code == 400
    assert set(response.context["form"].errors) == {"file", "newsletter"}


def test_a_file_bigger_than_the_admin_takes_is_refused_before_it_is_read(staff, weekly):
    response = upload(staff, b"email\n" + b"x" * (7 * 1024 * 1024), newsletter=weekly)

    assert response.status_code == 413
    assert not SubscriberImport.objects.exists()


def test_files_are_refused_by_admin_pages_that_take_none(staff, weekly):
    response = staff.post(
        f"/admin/newsletters/newsletter/{weekly.pk}/change/",
        {"name": "x", "file": SimpleUploadedFile("a.csv", b"email\n")},
    )
    assert response.status_code == 400


def test_importing_needs_the_permission_to_add_imports(client, weekly):
    client.force_login(make_user(is_staff=True))
    assert upload(client, b"email\na@example.com\n", newsletter=weekly).status_code == 403
    assert client.get(f"{IMPORTS}1/change/").status_code == 403
    assert not SubscriberImport.objects.exists()


def test_unknown_or_malformed_import_ids_are_not_found(staff):
    for path in ["999/change/", "abc/change/", "999/rejected.csv", "abc/rejected.csv"]:
        assert staff.get(IMPORTS + path).status_code == 404, path


# Export


def test_staff_export_the_subscribers_the_list_shows_as_csv(staff, weekly):
    subscribe(email="ann@example.com", name="=HYPERLINK()", newsletter=weekly, source="admin")
    subscribe(email="bob@example.com", newsletter=weekly, source="form")
    subscribe(email="cat@example.com", newsletter=make_newsletter(), source="admin")

    response = staff.get(SUBSCRIPTIONS + f"export.csv?newsletter__id__exact={weekly.pk}")

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:4] == ["newsletter_slug", "email", "name", "status"]
    assert [row[1] for row in rows[1:]] == ["ann@example.com", "bob@example.com"]
    assert rows[1][2] == "'=HYPERLINK()"
    assert (
        'href="/admin/newsletters/subscription/export.csv?'
        in staff.get(SUBSCRIPTIONS + "?source__exact=form").content.decode()
    )


def test_the_newsletter_page_exports_all_its_subscribers(staff, weekly):
    subscribe(email="ann@example.com", newsletter=weekly, source="admin")

    response = staff.get(f"/admin/newsletters/newsletter/{weekly.pk}/export.csv")

    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0].startswith("email,name,status")
    assert lines[1].startswith("ann@example.com,")
    assert staff.get("/admin/newsletters/newsletter/abc/export.csv").status_code == 404


def test_exporting_needs_the_permission_to_see_subscriptions(client, weekly):
    client.force_login(make_user(is_staff=True))
    assert client.get(SUBSCRIPTIONS + "export.csv").status_code == 403
    assert client.get(f"/admin/newsletters/newsletter/{weekly.pk}/export.csv").status_code == 403


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b'email,name\n"ann@example.com,Ann\nbob@example.com,Bob\n', "done"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 40, "failed"),
        ("email\nbj\u00f6rn@example.com\n".encode("utf-16"), "failed"),
        (b"email\n" + b"a" * 20_000 + b"@example.com\n", "done"),
    ],
    ids=["unclosed-quote", "binary", "utf-16", "huge-field"],
)
def test_a_malformed_csv_ends_with_its_reason_and_nothing_half_imported(
    staff, weekly, content, status
):
    assert upload(staff, content, newsletter=weekly).status_code == 302
    run_worker_until_idle()

    job = SubscriberImport.objects.get()
    assert job.status == status
    assert job.imported == 0
    assert not Subscription.objects.exists()
    page = staff.get(f"{IMPORTS}{job.pk}/change/")
    assert page.status_code == 200
    if status == "failed":
        assert job.error and job.error in page.content.decode()
    else:
        assert job.rejected >= 1 and job.report
