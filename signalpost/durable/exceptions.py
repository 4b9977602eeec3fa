class PermanentFailure(Exception):
    """Raised by a durable receiver (or for it) when retrying cannot help.

    The call is dead-lettered at once instead of being retried.
    """
