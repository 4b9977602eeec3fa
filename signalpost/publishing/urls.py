from django.urls import path

from signalpost.publishing import views
from signalpost.publishing.feeds import NewsletterFeed

urlpatterns = [
    path("n/<slug:slug>/", views.newsletter_page, name="newsletter"),
    path("n/<slug:slug>/feed/", NewsletterFeed(), name="newsletter_feed"),
    path("n/<slug:slug>/<slug:issue_slug>/", views.issue_page, name="issue"),
    path("media/issues/<path:name>", views.issue_image, name="issue_image"),
]
