"""The host's URLconf with its admin at /staff/ and no task-queue page."""

from django.contrib import admin
from django.urls import path

from tests.hosts.urls import urlpatterns as host_urlpatterns

urlpatterns = [*host_urlpatterns, path("staff/", admin.site.urls)]
