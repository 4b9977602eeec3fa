"""``--patch`` module: the sender as before the per-line body encoding and the token maker.

Each message's bodies quoted-printable-encoded whole, and each link token made by
``signing.dumps``: for ``bench/fanout.py --patch`` to measure those two changes
side by side with the current code in one run (bench/README.md, "Fan-out at
1,000,000").
"""

from signalpost.mail import messages
from signalpost.newsletters import links, tokens


class _WholeText:
    def encode(self, data):
        return messages.binascii.b2a_qp(data, quotetabs=False, istext=True).replace(b"\n", b"\r\n")


_letterhead_init = messages.Letterhead.__init__


def _letterhead_whole(self, *args, **kwargs):
    _letterhead_init(self, *args, **kwargs)
    self.body_lines = _WholeText()


def _unsubscribe_url(self, *, profile):
    token = tokens.token_make(
        purpose=tokens.UNSUBSCRIBE, profile=profile, newsletter=self.newsletter
    )
    return token.join(self.unsubscribe_around)


def _preferences_url(self, *, profile):
    return tokens.token_make(purpose=tokens.PREFERENCES, profile=profile).join(
        self.preferences_around
    )


messages.Letterhead.__init__ = _letterhead_whole
links.PersonalLinks.unsubscribe_url = _unsubscribe_url
links.PersonalLinks.preferences_url = _preferences_url
