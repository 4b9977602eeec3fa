"""What the redirect can tell about who is asking, judged at once and then forgotten.

Only the verdict is kept (``Hit.agent``), never the user agent or the address.
"""

from signalpost.engagement.models import Machine

# Substrings (lower case) of the user agents of security scanners, link-preview
# fetchers and HTTP libraries, none of which is a person reading the email.
SCANNER_AGENTS = (
    "barracuda",
    "mimecast",
    "proofpoint",
    "ppops",  # Proofpoint's URL defense
    "safelinks",
    "microsoft office",
    "ms-office",
    "msoffice",
    "bingpreview",
    "bingbot",
    "defender",
    "forcepoint",
    "sophos",
    "trendmicro",
    "symantec",
    "fireeye",
    "cisco",
    "ironport",
    "zscaler",
    "checkpoint",
    "paloalto",
    "urlscan",
    "virustotal",
    "slackbot",
    "twitterbot",
    "facebookexternalhit",
    "whatsapp",
    "telegrambot",
    "discordbot",
    "linkedinbot",
    "googlebot",
    "headlesschrome",
    "phantomjs",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "httpx",
    "go-http-client",
    "curl/",
    "wget/",
    "libwww",
    "java/",
    "okhttp",
    "scrapy",
    "bot/",
    "spider",
    "crawler",
)

# Image caches that fetch the open pixel for every message, read or not.
IMAGE_PROXIES = ("googleimageproxy", "yahoomailproxy", "ggpht.com")
# Apple Mail Privacy Protection fetches with this bare user agent, for everyone.
APPLE_PROXY_AGENT = "mozilla/5.0"


def click_agent(*, method: str, user_agent: str) -> str:
    """The machine reason a click request shows by itself, or ``""`` if it could be a person."""
    agent = user_agent.strip().lower()
    if method != "GET":
        return Machine.HEAD
    if not agent or any(scanner in agent for scanner in SCANNER_AGENTS):
        return Machine.SCANNER
    return Machine.HUMAN


def open_agent(*, method: str, user_agent: str) -> str:
    """The machine reason an open-pixel request shows by itself, or ``""``."""
    agent = user_agent.strip().lower()
    if agent == APPLE_PROXY_AGENT or any(proxy in agent for proxy in IMAGE_PROXIES):
        return Machine.PROXY
    return click_agent(method=method, user_agent=user_agent)
