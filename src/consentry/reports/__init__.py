"""Scan reports: HTML (self-contained), PDF, JSON lines, CSV and the chain-of-custody record."""
