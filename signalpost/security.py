"""The site's Content-Security-Policy: strict for the public pages, looser for staff.

The public pages and the API docs load only this site's stylesheet and scripts
and run no inline code, so their policy allows nothing else (``SECURE_CSP``).
The admin (Django's and ours) writes inline styles, so it gets
``CSP_STAFF``: still nothing from another host, and scripts only from this site
or carrying the request's nonce.
"""

from django.conf import settings
from django.urls import NoReverseMatch, get_script_prefix, reverse
from django.utils.csp import CSP

CSP_PUBLIC = {
    "default-src": [CSP.NONE],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.NONE],
}

CSP_STAFF = {
    **CSP_PUBLIC,
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
}


class StaffContentSecurityPolicyMiddleware:
    """Give responses under the admin's URL ``CSP_STAFF`` instead of ``SECURE_CSP``.

    Sits after Django's ``ContentSecurityPolicyMiddleware``, which reads the
    policy a response carries when it writes the header.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        # Wherever the project mounted the admin (a host site: perhaps /staff/), if at all.
        try:
            self.admin_prefix = reverse("admin:index").removeprefix(get_script_prefix()[:-1])
        except NoReverseMatch:
            self.admin_prefix = None

    def __call__(self, request):
        response = self.get_response(request)
        if (
            self.admin_prefix
            and request.path_info.startswith(self.admin_prefix)
            and settings.SECURE_CSP
        ):
            response._csp_config = CSP_STAFF
        return response
