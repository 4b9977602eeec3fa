"""What the persistence modules' contract tests compare: stored rows and sent signals."""

from datetime import timedelta

from django.utils import timezone


def row(model, pk, *, leave_out=("id", "created_at")):
    """Every column of one stored row, as the database gives it back, but ``leave_out``."""
    values = model.objects.filter(pk=pk).values().get()
    return {column: value for column, value in values.items() if column not in leave_out}


def assert_recent(moment):
    assert moment is not None
    assert abs(timezone.now() - moment) < timedelta(minutes=1)


class Heard:
    """Connects ``handler`` to ``signal`` for the block; keeps every call's arguments."""

    def __init__(self, signal, sender=None, handler=None):
        self.signal, self.sender, self.handler, self.calls = signal, sender, handler, []

    def __call__(self, sender, **kwargs):
        self.calls.append({"sender": sender, **kwargs})
        if self.handler:
            self.handler(sender, **kwargs)

    def __enter__(self):
        self.signal.connect(self, sender=self.sender, weak=False)
        return self

    def __exit__(self, *exc):
        self.signal.disconnect(self, sender=self.sender)
