from django.contrib.syndication.views import Feed
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import translation
from django.utils.feedgenerator import Atom1Feed

from signalpost.newsletters.languages import newsletter_language
from signalpost.newsletters.models import Newsletter
from signalpost.publishing.selectors import issues_sent

FEED_LENGTH = 50


class NewsletterFeed(Feed):
    """The Atom feed of a public newsletter's sent issues."""

    feed_type = Atom1Feed

    def get_feed(self, obj, request):
        # Its xml:lang: the newsletter's language, else the request's.
        with translation.override(newsletter_language(obj) or translation.get_language()):
            return super().get_feed(obj, request)

    def get_object(self, request, slug):
        return get_object_or_404(Newsletter, slug=slug, is_public=True)

    def title(self, newsletter):
        return newsletter.name

    def subtitle(self, newsletter):
        return newsletter.description

    def link(self, newsletter):
        return reverse("signalpost:newsletter", args=[newsletter.slug])

    def feed_url(self, newsletter):
        return reverse("signalpost:newsletter_feed", args=[newsletter.slug])

    def items(self, newsletter):
        return issues_sent(newsletter=newsletter).select_related("newsletter")[:FEED_LENGTH]

    def item_title(self, issue):
        return issue.subject

    def item_description(self, issue):
        return issue.body_html

    def item_link(self, issue):
        return reverse("signalpost:issue", args=[issue.newsletter.slug, issue.slug])

    def item_pubdate(self, issue):
        return issue.sent_at

    def item_updateddate(self, issue):
        return issue.sent_at

    def item_author_name(self, issue):
        return issue.newsletter.sender_name or issue.newsletter.name
