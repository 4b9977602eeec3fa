"""Recording what a signal sent, to assert it fired (or did not)."""


class SignalRecorder:
    """Connects to ``signal`` for the ``with`` block; ``calls`` holds each send's arguments."""

    def __init__(self, signal):
        self.signal = signal
        self.calls = []
        self.dispatch_uid = f"tests.recorder.{id(self)}"

    def __call__(self, sender, **kwargs):
        self.calls.append(kwargs)

    def __enter__(self):
        self.signal.connect(self, weak=False, dispatch_uid=self.dispatch_uid)
        return self

    def __exit__(self, *exc_info):
        self.signal.disconnect(dispatch_uid=self.dispatch_uid)
