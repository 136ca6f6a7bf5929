"""Signal types: one module each, behind one registry (see :mod:`consentry.signals.base`)."""

from consentry.signals import md5, pdq, photodna, sha1, sha256, vpdq  # noqa: F401  (registers)
from consentry.signals.base import (
    Comparison,
    Signal,
    SignalType,
    get_signal_type,
    register,
    signal_types,
    signal_types_for,
)
from consentry.signals.pdq import DIHEDRAL_TRANSFORMS, PDQ_MIN_QUALITY, PDQ_THRESHOLD

__all__ = [
    "Comparison", "Signal", "SignalType", "get_signal_type", "register", "signal_types",
    "signal_types_for", "DIHEDRAL_TRANSFORMS", "PDQ_MIN_QUALITY", "PDQ_THRESHOLD",
]
