"""How a durable receiver is retried."""

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``max_attempts`` runs, waiting about ``base * 2**(n-1)`` seconds (capped at
    ``backoff_max``) before retry ``n``, with equal jitter so that receivers failing
    together do not retry together.
    """

    max_attempts: int = 5
    backoff_base: float = 10.0
    backoff_max: float = 3600.0
    queue_name: str = "default"

    def __post_init__(self):
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("backoff_base and backoff_max must not be negative")

    def delay_before(self, attempt):
        """Return the seconds to wait before ``attempt`` (2 for the first retry)."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 2))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def describe(self):
        return (
            f"max {self.max_attempts} attempts, backoff {self.backoff_base:g}s x2^n "
            f"up to {self.backoff_max:g}s with jitter, queue {self.queue_name}"
        )
