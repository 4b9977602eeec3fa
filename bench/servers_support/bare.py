"""The smallest WSGI application: a 302, as a tracked link answers. bench/servers.py serves
it with each server to measure the server's own cost per request (no Django at all)."""


def application(environ, start_response):
    start_response("302 Found", [("Location", "https://example.com/"), ("Content-Length", "0")])
    return [b""]
