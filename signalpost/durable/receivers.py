"""Receivers that keep the task queue and dead letters in step with erasures.

They change only this database and run inside the sender's transaction.
"""

from django.dispatch import receiver

from signalpost.durable.services import durable_calls_forget
from signalpost.signals import profile_erased


@receiver(profile_erased, dispatch_uid="durable.calls_forget_profile")
def durable_calls_forget_profile(sender, *, profile_id, user_email, **kwargs):
    """Task arguments and dead letters keep the signal's user_email: erase it there too."""
    durable_calls_forget(profile_id=profile_id, email=user_email)
