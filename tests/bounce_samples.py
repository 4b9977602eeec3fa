"""Returned messages as mail systems write them: DSNs, non-standard bounces, auto-replies."""

from email.utils import formatdate

_DSN = """\
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: {to}
Subject: Undelivered Mail Returned to Sender
Date: {date}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B0UND"
Message-Id: <{n}.dsn@mx.example.net>

--B0UND
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

--B0UND
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
Arrival-Date: {date}

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {diagnostic}

--B0UND
Content-Type: text/rfc822-headers

From: editors@news.example.com
To: {recipient}
Subject: First light

--B0UND--
"""

_QMAIL = """\
From: MAILER-DAEMON@qmail.example.net
To: {to}
Subject: failure notice
Date: {date}
Message-Id: <{n}.qmail@qmail.example.net>

Hi. This is the qmail-send program at qmail.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<{recipient}>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

Subject: First light
"""

_AUTO_REPLY = """\
From: {recipient}
To: {to}
Subject: Out of office: First light
Date: {date}
Auto-Submitted: auto-replied
Message-Id: <{n}.ooo@example.org>

I am away until Monday.
"""

_GARBAGE = """\
From: someone@example.org
To: {to}
Subject: Question about my subscription {n}
Date: {date}
Message-Id: <{n}.question@example.org>

Hello, how do I change my name?
"""


def dsn(*, to, recipient, action="failed", status="5.1.1", diagnostic=None, n=1):
    diagnostic = diagnostic or f"{status[0]}50 {status} <{recipient}>: Recipient address rejected"
    return _fill(
        _DSN, to=to, recipient=recipient, action=action, status=status, diagnostic=diagnostic, n=n
    )


def qmail(*, to, recipient, n=1):
    return _fill(_QMAIL, to=to, recipient=recipient, n=n)


def auto_reply(*, to, recipient="away@example.org", n=1):
    return _fill(_AUTO_REPLY, to=to, recipient=recipient, n=n)


def garbage(*, to, n=1):
    return _fill(_GARBAGE, to=to, n=n)


def _fill(template, **values):
    text = template.format(date=formatdate(localtime=False), **values)
    return text.replace("\n", "\r\n").encode()
