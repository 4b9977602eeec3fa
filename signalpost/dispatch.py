"""Signals that declare their arguments.

``Signal(providing_args=[...])`` documented a signal's arguments and never
checked them; Django 4.0 removed it. ``DeclaredSignal`` brings the declaration
back and enforces it: sending with a missing or an undeclared argument raises
``TypeError`` naming it, before any receiver runs, so a mistake in a sender
fails in its first test instead of in some receiver at run time.
"""

from collections.abc import Callable, Iterable, KeysView, Mapping
from typing import Any, ClassVar

from django.dispatch import Signal

# What Signal.send returns: (receiver, its response) pairs; send_robust's
# responses may be the exception the receiver raised.
Responses = list[tuple[Callable[..., Any], Any]]


class DeclaredSignal(Signal):
    """A ``Signal`` with a name, a docstring and a fixed set of keyword arguments.

    ``arguments`` are required on every send; ``optional_arguments`` may be
    left out. Receivers are called exactly as by ``django.dispatch.Signal``.

    Every instance is findable by name in ``DeclaredSignal.by_name``: a durable
    receiver's task records the signal's name, and the worker looks it up.
    """

    by_name: ClassVar[dict[str, "DeclaredSignal"]] = {}

    def __init__(
        self,
        name: str,
        *,
        arguments: Iterable[str],
        optional_arguments: Iterable[str] = (),
        doc: str = "",
        use_caching: bool = False,
    ) -> None:
        super().__init__(use_caching=use_caching)
        self.name = name
        DeclaredSignal.by_name[name] = self
        self.arguments = tuple(arguments)
        self.optional_arguments = tuple(optional_arguments)
        self.__doc__ = doc
        # Frozen sets make the check one C-level comparison with the kwargs' keys.
        self.required_argument_set = frozenset(self.arguments)
        self.allowed_argument_set = self.required_argument_set | frozenset(self.optional_arguments)

    def __repr__(self) -> str:
        return f"<DeclaredSignal {self.name}({', '.join(self.arguments)})>"

    def check_arguments(self, named: Mapping[str, object]) -> None:
        """Raise ``TypeError`` unless ``named`` holds exactly the declared arguments."""
        keys: KeysView[str] = named.keys()
        # The fast path: exactly the required arguments, as on almost every send.
        if keys == self.required_argument_set:
            return
        missing = sorted(self.required_argument_set - keys)
        if missing:
            raise TypeError(
                f"{self.name}.send() missing required argument(s): "
                + ", ".join(repr(name) for name in missing)
            )
        unknown = sorted(keys - self.allowed_argument_set)
        if unknown:
            raise TypeError(
                f"{self.name}.send() got unexpected argument(s): "
                + ", ".join(repr(name) for name in unknown)
                + f"; declared: {', '.join(self.allowed_argument_set_sorted())}"
            )

    def allowed_argument_set_sorted(self) -> tuple[str, ...]:
        """Return the declared argument names, required first, in declaration order."""
        return self.arguments + self.optional_arguments

    def send(self, sender: Any, **named: Any) -> Responses:
        """Check the arguments, then send as ``Signal.send`` does; return its responses."""
        # check_arguments' fast path, inlined: sends are hot and a call is not free.
        if named.keys() != self.required_argument_set:
            self.check_arguments(named)
        # Signal.send returns [] at once when nothing is connected; returning here
        # spares a second call and a second packing of the arguments.
        if not self.receivers:
            return []
        return super().send(sender, **named)

    def send_robust(self, sender: Any, **named: Any) -> Responses:
        """Check the arguments, then send as ``Signal.send_robust`` does.

        A wrong argument still raises: it is the sender's bug, not a receiver's.
        """
        self.check_arguments(named)
        return super().send_robust(sender, **named)

    async def asend(self, sender: Any, **named: Any) -> Responses:
        """Check the arguments, then send as ``Signal.asend`` does."""
        self.check_arguments(named)
        return await super().asend(sender, **named)

    async def asend_robust(self, sender: Any, **named: Any) -> Responses:
        """Check the arguments, then send as ``Signal.asend_robust`` does."""
        self.check_arguments(named)
        return await super().asend_robust(sender, **named)
