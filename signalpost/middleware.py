"""Small HTTP details Django leaves to the server."""


class HeadWithoutBodyMiddleware:
    """Answer HEAD with a GET's headers and no body.

    Django renders the page for HEAD as for GET; runserver drops the body but
    gunicorn only warns and drops it itself. Dropping it here keeps the
    ``Content-Length`` the GET would have (RFC 9110) and the server quiet.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.method == "HEAD" and not response.streaming:
            response.content = b""
        return response
