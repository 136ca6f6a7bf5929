"""First start: an admin key (printed once) and a demo bank of benign example hashes."""

from __future__ import annotations

from consentry.banks.formats.records import HashRecord
from consentry.banks.service import BankService
from consentry.db.session import Database
from consentry.keys import KeyStore
from consentry.signals import get_signal_type

DEMO_BANK = "demo"
#: PDQ of Meta's benign bridge test photo (pdq/data/bridge-mods/aaa-orig.jpg): the README example.
DEMO_PDQ = get_signal_type("pdq").examples()[0]


def ensure_admin_key(db: Database) -> str | None:
    """Create an admin key when none is active; returns the secret (to print once) or None."""
    keys = KeyStore(db)
    if keys.count_active() > 0:
        return None
    secret, _info = keys.create("admin", "first-start admin")
    return secret


def ensure_demo_bank(db: Database) -> bool:
    """Seed the demo bank when there are no banks at all; True if it was created."""
    banks = BankService(db)
    if banks.banks_by_id():  # (list_banks counts every bank's entries: seconds at 10M)
        return False
    from consentry.banks.service import Conflict

    try:
        banks.create_bank(DEMO_BANK, "custom",
                          "Benign example hashes (Meta's public PDQ/vPDQ test pictures) to try matching with.")
    except Conflict:  # another host starting on the same database at the same moment seeded it
        return False
    records = [HashRecord("pdq", v, tags=["demo"], source="consentry-demo", meta={"quality": 100})
               for v in get_signal_type("pdq").examples()]
    records += [HashRecord("md5", v, tags=["demo"], source="consentry-demo")
                for v in get_signal_type("md5").examples()]
    records += [HashRecord("vpdq", v, tags=["demo"], source="consentry-demo")
                for v in get_signal_type("vpdq").examples()]
    banks.add_records(DEMO_BANK, records, added_by="consentry")
    return True
