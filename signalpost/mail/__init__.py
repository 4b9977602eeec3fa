"""Every email Signalpost sends: built by ``messages``, sent by ``transport``.

``messages.Letterhead`` holds what the messages of one send share (subject,
sender, reply-to, list headers) and builds each recipient's ``Message``; a
message is Django's ``EmailMultiAlternatives`` for any mail backend and, for
SMTP, the same message as bytes assembled without the email package.
``transport.Transport`` hands messages to the default mailer; ``smtp`` is the
SMTP exchange it uses. docs/email.md says how the pieces fit.
"""
