"""Signalpost's public pages, to include at any prefix: ``path("news/", include(...))``.

Their names live in the ``signalpost`` namespace (``reverse("signalpost:subscribe")``), so
they cannot collide with a host project's own ``home`` or ``subscribe``.
"""

from django.urls import include, path

app_name = "signalpost"

urlpatterns = [
    path("", include("signalpost.newsletters.urls")),
    path("", include("signalpost.publishing.urls")),
    path("", include("signalpost.engagement.urls")),
]
