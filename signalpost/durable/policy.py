"""How anything that fails for a while is retried: the one backoff formula.

Durable receivers, the public forms' tasks, webhook deliveries and issue batches
all wait ``RetryPolicy.delay_before(attempt)`` before trying again; each keeps
its own numbers (attempts, base, ceiling, whether to add jitter).
"""

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``max_attempts`` runs, waiting about ``base * 2**(n-1)`` seconds (capped at
    ``backoff_max``) before retry ``n``, with equal jitter so that receivers failing
    together do not retry together. Without ``jitter`` the wait is exactly that.
    ``queue_name`` is where a durable receiver's calls run, ``priority`` their place
    among the due tasks there (higher first, as django.tasks orders them).
    """

    max_attempts: int = 5
    backoff_base: float = 10.0
    backoff_max: float = 3600.0
    queue_name: str = "default"
    jitter: bool = True
    priority: int = 0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("backoff_base and backoff_max must not be negative")

    def delay_before(self, attempt: int) -> float:
        """Return the seconds to wait before ``attempt`` (2 for the first retry)."""
        ceiling: float = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 2))
        if not self.jitter:
            return ceiling
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def delay_after(self, attempts: int) -> float:
        """Return the seconds to wait after ``attempts`` failed attempts (1 for the first)."""
        return self.delay_before(attempts + 1)

    def describe(self) -> str:
        return (
            f"max {self.max_attempts} attempts, backoff {self.backoff_base:g}s x2^n "
            f"up to {self.backoff_max:g}s{' with jitter' if self.jitter else ''}, "
            f"queue {self.queue_name}"
        )
