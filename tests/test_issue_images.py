"""Images uploaded into an issue's body: checked by decoding, resized once, stored through
Django's storage API, inserted as Markdown and served from the site."""

import io
import json

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from signalpost.publishing.models import Issue
from signalpost.publishing.services import (
    IMAGE_MAX_BYTES,
    IMAGE_WIDTH,
    issue_create,
    issue_image_add,
    issue_send,
)
from tests.factories import make_newsletter, make_user

pytestmark = pytest.mark.django_db

ISSUES = "/admin/publishing/issue/"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.SIGNALPOST_SITE_URL = "https://news.example.com"
    return settings.MEDIA_ROOT


@pytest.fixture
def draft(db):
    letter = make_newsletter(slug="weekly")
    return issue_create(newsletter=letter, subject="Pictures", body_markdown="Look:")


@pytest.fixture
def writer(client):
    user = make_user(is_staff=True)
    for codename in ("view_issue", "change_issue"):
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label="publishing", codename=codename)
        )
    client.force_login(user)
    return user


def image_file(kind="PNG", size=(40, 30), name="photo.png", exif=None):
    buffer = io.BytesIO()
    options = {"exif": exif} if exif is not None else {}
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=kind, **options)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type=f"image/{kind.lower()}")


def stored(url):
    """Open what the site serves at ``url`` (absolute) through the site."""
    return url.removeprefix("https://news.example.com")


def test_a_wide_image_is_made_1200_px_wide_once_and_served_from_the_site(client, draft):
    url = issue_image_add(issue=draft, upload=image_file(size=(3000, 1500)))
    assert url.startswith("https://news.example.com/media/issues/")
    response = client.get(stored(url))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert "immutable" in response["Cache-Control"]
    served = Image.open(io.BytesIO(b"".join(response.streaming_content)))
    assert served.size == (IMAGE_WIDTH, 600)


def test_a_small_image_keeps_its_size_and_loses_its_metadata(client, draft):
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"  # Make
    exif[0x0112] = 1  # orientation
    url = issue_image_add(
        issue=draft, upload=image_file("JPEG", (400, 300), "photo.jpg", exif=exif.tobytes())
    )
    served = Image.open(io.BytesIO(b"".join(client.get(stored(url)).streaming_content)))
    assert served.format == "JPEG"
    assert served.size == (400, 300)
    assert 0x010F not in served.getexif()


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"", "empty.png", "empty"),
        (b"GIF89a not really", "fake.gif", "Not an image"),
        (b"<svg onload=alert(1)></svg>", "x.svg", "Not an image"),
        (b"%PDF-1.4 ...", "doc.png", "Not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "broken.png", "Not an image"),
    ],
)
def test_what_is_not_a_readable_image_is_refused_by_decoding(draft, content, name, message):
    with pytest.raises(ValidationError) as refused:
        issue_image_add(issue=draft, upload=SimpleUploadedFile(name, content))
    assert message in refused.value.message_dict["image"][0]


def test_other_image_formats_are_refused(draft):
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buffer, format="BMP")
    with pytest.raises(ValidationError, match="JPEG, PNG, GIF or WebP"):
        issue_image_add(issue=draft, upload=SimpleUploadedFile("x.bmp", buffer.getvalue()))


def test_an_image_of_too_many_pixels_is_refused_before_it_is_decoded(draft):
    buffer = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buffer, format="PNG")  # a few kB, 100 M pixels
    with pytest.raises(ValidationError, match="more than 40,000,000 pixels"):
        issue_image_add(issue=draft, upload=SimpleUploadedFile("bomb.png", buffer.getvalue()))


def test_an_oversized_file_is_refused(draft):
    upload = image_file()
    upload.size = IMAGE_MAX_BYTES + 1
    with pytest.raises(ValidationError, match="at most 5 MB"):
        issue_image_add(issue=draft, upload=upload)


def test_a_sent_issue_takes_no_image(draft):
    issue_send(issue=draft)
    with pytest.raises(ValidationError, match="cannot be changed"):
        issue_image_add(issue=draft, upload=image_file())


def test_the_upload_endpoint_answers_the_markdown_to_insert(client, writer, draft):
    response = client.post(
        f"{ISSUES}{draft.pk}/image/",
        {"image": image_file(), "alt": "A red [square]"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["markdown"] == f"![A red (square)]({body['url']})"
    assert Issue.objects.get(pk=draft.pk).body_markdown == "Look:", "inserting is the editor's"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "Choose an image"),
        ({"image": SimpleUploadedFile("x.png", b"nope")}, "Not an image"),
        ({"image": image_file(), "alt": "x" * 201}, "at most 200"),
    ],
)
def test_the_upload_endpoint_names_the_field_it_refuses(client, writer, draft, data, message):
    response = client.post(f"{ISSUES}{draft.pk}/image/", data)
    assert response.status_code == 400
    assert message in json.dumps(response.json()["errors"])


def test_without_javascript_the_image_is_added_to_the_body_with_the_text_typed(
    client, writer, draft
):
    response = client.post(
        f"{ISSUES}{draft.pk}/write/",
        {
            "subject": "Pictures",
            "body_markdown": "Look, unsaved text:",
            "image": image_file(),
            "alt": "A red square",
        },
    )
    assert response.status_code == 302
    body = Issue.objects.get(pk=draft.pk).body_markdown
    assert body.startswith("Look, unsaved text:\n\n![A red square](https://news.example.com/media/")
    assert '<img alt="A red square" src="https://news.example.com/media/issues/' in (
        Issue.objects.get(pk=draft.pk).body_html
    )


def test_without_javascript_a_refused_image_keeps_the_text_and_says_why(client, writer, draft):
    response = client.post(
        f"{ISSUES}{draft.pk}/write/",
        {
            "subject": "Pictures",
            "body_markdown": "Text I typed",
            "image": SimpleUploadedFile("x.png", b"nope"),
        },
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Not an image that can be read" in page
    assert "Text I typed" in page
    assert Issue.objects.get(pk=draft.pk).body_markdown == "Look:"


def test_other_admin_pages_still_refuse_files(client, writer, draft):
    response = client.post(f"{ISSUES}{draft.pk}/preview/", {"subject": "x", "f": image_file()})
    assert response.status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "/media/issues/1/" + "0" * 32 + ".png",  # a name never given out
        "/media/issues/../../settings.py",
        "/media/issues/1/../../../etc/passwd",
        "/media/issues/1/abc.png",
        "/media/issues/1/" + "0" * 32 + ".svg",
        "/media/issues/%00",
    ],
)
def test_nothing_but_uploaded_images_is_served(client, path):
    assert client.get(path).status_code == 404
