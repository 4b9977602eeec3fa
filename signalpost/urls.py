from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from signalpost.api.api import api
from signalpost.durable.views import queue_status_page
from signalpost.engagement.admin_views import issue_links_csv, issue_report_page
from signalpost.views import healthz, language_set

handler500 = "signalpost.views.server_error"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("language/", language_set, name="set_language"),
    path("admin/queue/", queue_status_page, name="queue_status"),
    # Before the admin's own: its catch-all would take them for an issue's change page.
    path("admin/publishing/issue/<int:issue_id>/report/", issue_report_page, name="issue_report"),
    path(
        "admin/publishing/issue/<int:issue_id>/report/links.csv",
        issue_links_csv,
        name="issue_report_links_csv",
    ),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("", include("signalpost.newsletters.urls")),
    path("", include("signalpost.publishing.urls")),
    path("", include("signalpost.engagement.urls")),
]
if settings.ANYMAIL_WEBHOOK_SECRET:
    urlpatterns.insert(-2, path("anymail/", include("anymail.urls")))
