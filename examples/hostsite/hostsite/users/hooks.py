def verified_email(user):
    """SIGNALPOST_VERIFIED_EMAIL: the member's address once the site has verified it."""
    return user.email if user.email_verified else None
