from django.contrib import admin
from django.urls import include, path

from signalpost.api.api import api
from signalpost.durable.views import queue_status_page

urlpatterns = [
    path("admin/queue/", queue_status_page, name="queue_status"),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("anymail/", include("anymail.urls")),
    path("", include("signalpost.newsletters.urls")),
    path("", include("signalpost.publishing.urls")),
]
