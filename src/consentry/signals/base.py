"""The signal-type protocol and its registry.

A *signal type* is one way to fingerprint content (``md5``, ``sha256``, ``pdq``, ``vpdq``). Each
is a small module exposing a class with class-level behaviour only, registered here by name, in
the spirit of python-threatexchange's ``SignalType``: name, content types, compute,
parse/serialise in ThreatExchange string formats, distance, default threshold, a brute-force
compare (the ground truth indexes are tested against) and examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    from consentry.media.content import Content


@dataclass(frozen=True)
class Signal:
    """One computed value: ``value`` is the canonical ThreatExchange string."""

    signal_type: str
    value: str
    quality: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Comparison:
    """Result of comparing a query value with one candidate."""

    candidate: int  # index into the candidate sequence
    distance: int | float
    detail: dict[str, Any] = field(default_factory=dict, compare=False)


@runtime_checkable
class SignalType(Protocol):
    name: ClassVar[str]
    content_types: ClassVar[tuple[str, ...]]
    default_threshold: ClassVar[int | float]

    @classmethod
    def compute(cls, content: "Content") -> Signal: ...

    @classmethod
    def parse(cls, text: str) -> str:
        """Validate and canonicalise a serialised value; raise ``SignalValueError``."""
        ...

    @classmethod
    def serialize(cls, value: str) -> str: ...

    @classmethod
    def distance(cls, a: str, b: str) -> int | float: ...

    @classmethod
    def brute_force_compare(
        cls, query: str, candidates: Sequence[str], threshold: int | float | None = None
    ) -> list[Comparison]: ...

    @classmethod
    def examples(cls) -> list[str]: ...


_REGISTRY: dict[str, type[SignalType]] = {}


def register(cls: type[SignalType]) -> type[SignalType]:
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"signal type {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def get_signal_type(name: str) -> type[SignalType]:
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown signal type {name!r} (known: {known})") from None


def signal_types() -> dict[str, type[SignalType]]:
    return dict(_REGISTRY)


def signal_types_for(content_type: str) -> list[type[SignalType]]:
    return [st for st in _REGISTRY.values() if content_type in st.content_types]
