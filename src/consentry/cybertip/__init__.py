"""NCMEC CyberTipline reports (18 U.S.C. § 2258A) and the one-year preservation holds that the
REPORT Act (2024) requires after a report (issue 15).

- :mod:`.builder`: a confirmed CSAM case → the report XML and each file's ``fileDetails``,
  validated against the schema kept in this package (``ispws.xsd``, a reconstruction: see its
  header and docs/cybertipline.md).
- :mod:`.client`: the ISPWS HTTP client (``/submit``, ``/upload``, ``/fileinfo``, ``/finish``,
  ``/retract``, ``/status``), Basic auth, test and production endpoints.
- :mod:`.service`: configuration (credentials encrypted with the instance secret), drafts,
  four-eyes approval, filing that never files a case twice, retraction.
- :mod:`.holds`: preservation holds on a case's vault items, records and audit events.
"""
