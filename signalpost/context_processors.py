"""Template context the standalone site's own pages share (its 400, 404 and 500 pages).

Signalpost's pages get the same from their views (``signalpost.pages``); a host project
may add this processor to link Signalpost's pages from its own templates.
"""

from signalpost.pages import page_context


def site_links(request):
    """Add ``site_links`` (the navigation's URLs, the stylesheet's) and the base template."""
    return page_context()
