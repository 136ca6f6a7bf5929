"""Consentry: hashes, banks and evidence against AI-generated abuse imagery and NCII."""

__version__ = "0.1.0"
