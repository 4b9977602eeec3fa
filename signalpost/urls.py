from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from signalpost.api.api import api
from signalpost.durable.views import queue_status_page
from signalpost.views import healthz, language_set

handler500 = "signalpost.views.server_error"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("language/", language_set, name="set_language"),
    path("admin/queue/", queue_status_page, name="queue_status"),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("", include("signalpost.newsletters.urls")),
    path("", include("signalpost.publishing.urls")),
    path("", include("signalpost.engagement.urls")),
]
if settings.ANYMAIL_WEBHOOK_SECRET:
    urlpatterns.insert(-2, path("anymail/", include("anymail.urls")))
