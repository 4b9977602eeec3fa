"""``SIGNALPOST_VERIFIED_EMAIL`` hooks as a host site writes them."""


def verified_email(user):
    """The user's address, verified when the test marked it so (``user.verified``)."""
    return user.email if getattr(user, "verified", False) else None


def every_address_verified(user):
    return user.email


not_callable = "a string"
