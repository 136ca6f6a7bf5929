"""Exact indexes: PDQ (Hamming radius search) and exact digests."""

from consentry.index.exact import ExactIndex
from consentry.index.pdq_index import (
    DIHEDRAL_TRANSFORMS,
    PDQIndex,
    hex_to_words,
    hex_to_words_many,
    words_to_hex,
)

__all__ = ["ExactIndex", "PDQIndex", "DIHEDRAL_TRANSFORMS", "hex_to_words", "hex_to_words_many", "words_to_hex"]
