"""Tags and attributes on profiles: set from the API, an import and services, each change
announced by its catalogue signal, hostile input refused with nothing written."""

import io
import json

import pytest

from signalpost.accounts.models import Profile, Tag
from signalpost.accounts.services import (
    profile_attributes_set,
    profile_attributes_update,
    profile_tags_set,
)
from signalpost.newsletters.imports import ImportFileError, subscribers_import
from signalpost.signals import profile_attributes_changed, profile_tagged, profile_untagged
from signalpost.webhooks.events import EVENTS
from tests.factories import make_newsletter, make_profile
from tests.recorders import SignalRecorder
from tests.test_api import api, token  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def tags_of(profile):
    return sorted(profile.tags.values_list("name", flat=True))


def update(api, body):  # noqa: F811
    return api("post", "/profiles/update", body)


def test_the_api_sets_tags_and_attributes_and_reads_them_back(api):  # noqa: F811
    make_profile(email="ada@example.com")

    response = update(
        api,
        {
            "email": "ada@example.com",
            "attributes": {"plan": "pro", "seats": 3},
            "tags": ["VIP", " Early  readers "],
        },
    )

    assert response.status_code == 200, response.content
    assert response.json()["tags"] == ["early readers", "vip"]
    assert response.json()["attributes"] == {"plan": "pro", "seats": 3}
    ada = Profile.objects.get(email="ada@example.com")
    assert tags_of(ada) == ["early readers", "vip"]


def test_changing_tags_sends_tagged_and_untagged_for_the_changes_only():
    ada = make_profile(email="ada@example.com")
    profile_tags_set(profile=ada, names=["vip", "beta"], source="api")

    with SignalRecorder(profile_tagged) as tagged, SignalRecorder(profile_untagged) as untagged:
        profile_tags_set(profile=ada, names=["vip", "gold"], source="admin")
        profile_tags_set(profile=ada, names=["gold", "vip"], source="admin")

    assert [(c["tag"], c["profile_ids"], c["source"]) for c in tagged.calls] == [
        ("gold", [ada.pk], "admin")
    ]
    assert [(c["tag"], c["profile_ids"]) for c in untagged.calls] == [("beta", [ada.pk])]
    assert tags_of(ada) == ["gold", "vip"]


def test_changing_attributes_sends_what_changed_and_nothing_when_nothing_did():
    ada = make_profile(email="ada@example.com", attributes={"plan": "free", "city": "Paris"})

    with SignalRecorder(profile_attributes_changed) as changed:
        profile_attributes_set(profile=ada, attributes={"plan": "pro", "city": "Paris"})
        profile_attributes_set(profile=ada, attributes={"plan": "pro", "city": "Paris"})
        profile_attributes_update(profile=ada, values={"city": None, "frequency": "weekly"})

    assert [call["changed"] for call in changed.calls] == [
        {"plan": ["free", "pro"]},
        {"city": ["Paris", None], "frequency": [None, "weekly"]},
    ]
    ada.refresh_from_db()
    assert ada.attributes == {"plan": "pro", "frequency": "weekly"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tags": ["ok", "a,b"]}, "tags"),
        ({"tags": ["x" * 51]}, "tags"),
        ({"tags": ["bell\x07"]}, "tags"),
        ({"tags": ["   "]}, "tags"),
        ({"tags": [f"t{n}" for n in range(101)]}, "tags"),
        ({"tags": "vip"}, "tags"),
        ({"tags": [{"name": "vip"}]}, "tags"),
        ({"attributes": {"bad\nkey": 1}}, "attributes"),
        ({"attributes": {"note": "escape \x1b[31m"}}, "attributes"),
        ({"attributes": {"nested": {"a": 1}}}, "attributes"),
        ({"attributes": {"long": "x" * 1001}}, "attributes"),
    ],
)
def test_hostile_tags_and_attributes_get_400_naming_the_field_and_change_nothing(
    api,  # noqa: F811
    body,
    field,
):
    make_profile(email="ada@example.com", name="Ada", attributes={"plan": "free"})

    response = update(api, {"email": "ada@example.com", "name": "Changed", **body})

    assert response.status_code == 400, response.content
    assert all(error["field"].startswith(field) for error in response.json()["errors"])
    ada = Profile.objects.get(email="ada@example.com")
    assert (ada.name, ada.attributes, tags_of(ada)) == ("Ada", {"plan": "free"}, [])
    assert not Tag.objects.exists()


def test_an_import_turns_extra_columns_into_attributes_and_a_tags_column_into_tags():
    weekly = make_newsletter(slug="weekly")
    known = make_profile(email="known@example.com", attributes={"plan": "old"})
    content = (
        b"email,name,plan,seats,zip,tags\n"
        b'ada@example.com,Ada,pro,3,01234,"VIP, Beta"\n'
        b"grace@example.com,Grace,,2.5,,beta\n"
        b"known@example.com,Known,new,1,,vip\n"
    )

    with SignalRecorder(profile_tagged) as tagged:
        report = subscribers_import(binary=io.BytesIO(content), newsletter=weekly)

    assert (report.imported, report.rejected) == (3, 0)
    ada = Profile.objects.get(email="ada@example.com")
    # A plain number is a number; a leading zero keeps a postcode text.
    assert ada.attributes == {"plan": "pro", "seats": 3, "zip": "01234"}
    assert Profile.objects.get(email="grace@example.com").attributes == {"seats": 2.5}
    assert tags_of(ada) == ["beta", "vip"]
    # A known profile keeps its attributes, and gets the file's tags.
    known.refresh_from_db()
    assert (known.attributes, tags_of(known)) == ({"plan": "old"}, ["vip"])
    grace = Profile.objects.get(email="grace@example.com")
    assert sorted((c["tag"], sorted(c["profile_ids"]), c["source"]) for c in tagged.calls) == [
        ("beta", sorted([ada.pk, grace.pk]), "import"),
        ("vip", sorted([ada.pk, known.pk]), "import"),
    ]


def test_an_import_row_with_a_hostile_tag_is_rejected_alone():
    weekly = make_newsletter(slug="weekly")
    content = (
        'email,tags\nada@example.com,"[""ok"", ""bad\\u0007""]"\n'
        "grace@example.com,fine\n"
        f"long@example.com,{'x' * 60}\n"
    ).encode()
    content = content.replace(b"\\u0007", b"\x07")

    report = subscribers_import(binary=io.BytesIO(content), newsletter=weekly)

    assert (report.imported, report.rejected) == (1, 2)
    assert all("tag" in rejection["reason"] for rejection in report.rejections)
    assert list(Profile.objects.values_list("email", flat=True)) == ["grace@example.com"]
    assert sorted(Tag.objects.values_list("name", flat=True)) == ["fine"]


def test_an_import_whose_column_cannot_be_an_attribute_is_refused_whole():
    weekly = make_newsletter(slug="weekly")
    content = ("email," + "x" * 101 + "\nada@example.com,1\n").encode()

    with pytest.raises(ImportFileError, match="a column cannot be an attribute"):
        subscribers_import(binary=io.BytesIO(content), newsletter=weekly)
    assert not Profile.objects.exists()


def test_the_webhook_events_carry_the_tag_with_the_addresses_and_the_changes():
    ada = make_profile(email="ada@example.com")
    _signal, build_tagged = EVENTS["subscriber.tagged"]
    _signal, build_changed = EVENTS["subscriber.attributes_changed"]

    tagged = build_tagged(tag="vip", profile_ids=[ada.pk], source="api")
    changed = build_changed(
        profile=ada, user_email=ada.email, changed={"plan": [None, "pro"]}, source="api"
    )

    assert tagged == {"tag": "vip", "emails": ["ada@example.com"], "source": "api"}
    assert json.loads(json.dumps(changed)) == {
        "email": "ada@example.com",
        "changed": {"plan": [None, "pro"]},
        "source": "api",
    }
