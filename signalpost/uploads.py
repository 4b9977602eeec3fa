"""File uploads, and forms of many fields: refused unless the view declares it takes them.

No view of Signalpost takes a file, so every multipart file part is refused when
its headers arrive, before any of its bytes is read or spooled to disk.
``FILE_UPLOAD_HANDLERS`` puts :class:`FilesRefusedUploadHandler` first; Django's
own handlers after it serve the views marked with :func:`takes_files`.

A form has at most ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` fields, unless its view is
marked with :func:`takes_fields` (a form of rows, such as an automation's steps):
``middleware.RequestBodyMiddleware`` reads its form data with that view's limit.
"""

from django.core.exceptions import BadRequest
from django.core.files.uploadhandler import FileUploadHandler
from django.utils.translation import gettext as _


class FileRefused(BadRequest):
    """A multipart body carried a file to a view that takes none; ``field`` is its part's name."""

    def __init__(self, message, *, field):
        super().__init__(message)
        self.field = field


def takes_files(view):
    """Mark ``view`` as one that accepts uploaded files; return it."""
    view.takes_files = True
    return view


def takes_fields(limit):
    """Mark a view as taking form data of up to ``limit`` fields (urlencoded); the
    decorator returns the view."""

    def mark(view):
        view.takes_fields = limit
        return view

    return mark


def view_fields_max(request):
    """How many fields the form data of ``request``'s view may have beyond the usual
    limit; None for the usual limit."""
    match = getattr(request, "resolver_match", None)
    return getattr(match.func, "takes_fields", None) if match else None


def view_takes_files(request):
    """Return whether the view ``request`` resolved to accepts uploaded files."""
    match = getattr(request, "resolver_match", None)
    return bool(match and getattr(match.func, "takes_files", False))


class FilesRefusedUploadHandler(FileUploadHandler):
    """Raise :class:`FileRefused` at the first file part, unless the view takes files."""

    def new_file(self, field_name, *args, **kwargs):
        if not view_takes_files(self.request):
            message = _("%(field)s: files are not accepted here.") % {"field": field_name}
            raise FileRefused(message, field=field_name)

    def receive_data_chunk(self, raw_data, start):
        return raw_data

    def file_complete(self, file_size):
        return None
