"""Bulk scans of seized media (``consentry scan``): walk -> per-file signals and evidence ->
``scan.db`` -> triage -> reports. See ``docs/scan.md``."""
