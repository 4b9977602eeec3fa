"""A host's URLconf: its own home and subscribe pages, Signalpost's under /news/."""

from django.http import HttpResponse
from django.urls import include, path

urlpatterns = [
    path("", lambda request: HttpResponse("the host's home"), name="home"),
    path("subscribe/", lambda request: HttpResponse("the host's own subscribe"), name="subscribe"),
    path("news/", include("signalpost.public_urls")),
]
