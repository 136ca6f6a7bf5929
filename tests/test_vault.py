"""Evidence vault: off by default, AES-GCM at rest, random names, retention, legal holds, purge."""

from __future__ import annotations

import base64
import hashlib
import io
import os
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from consentry.config import Settings
from consentry.db.models import utcnow
from consentry.review.audit import AuditLog
from consentry.review.vault import Vault, VaultDisabled, VaultError, VaultItemNotFound
from imagegen import encode, scene

KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture
def image_bytes():
    return encode(scene(seed=1), "PNG")


@pytest.fixture
def vault(db, tmp_path):
    return Vault(Settings(home=tmp_path, vault_key=KEY), db)


def test_off_by_default(db, tmp_path):
    assert Vault.from_settings(Settings(home=tmp_path), db) is None
    with pytest.raises(VaultDisabled):
        Vault(Settings(home=tmp_path), db)
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(VaultError, match="CONSENTRY_VAULT_KEY"):
            Vault(Settings(home=tmp_path, vault_key=bad), db)


def test_put_encrypts_at_rest_and_get_decrypts(vault, image_bytes, tmp_path):
    digest = hashlib.sha256(image_bytes).hexdigest()
    item_id = vault.put(image_bytes, sha256=digest, reason="rule block-known-abuse", retain_days=30)
    files = [p for p in (tmp_path / "vault").rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].name == item_id and digest not in str(files[0])
    blob = files[0].read_bytes()
    assert image_bytes not in blob and image_bytes[:64] not in blob and blob.startswith(b"CSV1")
    assert vault.get(item_id) == image_bytes
    info = vault.info(item_id)
    assert info.sha256 == digest and info.size == len(image_bytes) and not info.legal_hold
    assert timedelta(days=29) < info.retain_until - info.created_at <= timedelta(days=30)
    # a fresh nonce per blob: the same content stored twice gives different ciphertexts
    other = vault.put(image_bytes, reason="again")
    assert (tmp_path / "vault" / other[:2] / other).read_bytes()[4:] != blob[4:]
    events = [(e.event_type, e.data.get("item")) for e in AuditLog(vault.db).list()]
    assert events == [("vault.put", item_id), ("vault.put", other)]


def test_tampering_wrong_key_and_swapped_blobs_fail(vault, db, image_bytes, tmp_path):
    a = vault.put(image_bytes, reason="a")
    b = vault.put(encode(scene(seed=2), "PNG"), reason="b")
    pa, pb = (tmp_path / "vault" / a[:2] / a), (tmp_path / "vault" / b[:2] / b)
    other_key = Vault(Settings(home=tmp_path, vault_key=base64.b64encode(os.urandom(32)).decode()), db)
    with pytest.raises(VaultError, match="wrong key or tampered"):
        other_key.get(a)
    blob_a, blob_b = pa.read_bytes(), pb.read_bytes()
    pa.write_bytes(blob_b)  # the item id is the associated data: a renamed blob does not decrypt
    with pytest.raises(VaultError, match="wrong key or tampered"):
        vault.get(a)
    flipped = bytearray(blob_a)
    flipped[40] ^= 1
    pa.write_bytes(bytes(flipped))
    with pytest.raises(VaultError, match="wrong key or tampered"):
        vault.get(a)
    with pytest.raises(VaultError, match="sha256"):
        vault.put(image_bytes, sha256="0" * 64)
    with pytest.raises(VaultItemNotFound):
        vault.get("../../etc/passwd")


def test_purge_respects_retention_and_legal_holds(vault, image_bytes, tmp_path):
    keep = vault.put(image_bytes, reason="long", retain_days=365)
    expired = vault.put(image_bytes, reason="short", retain_days=1)
    held = vault.put(image_bytes, reason="court", retain_days=1)
    vault.set_hold(held, True, reason="court order 12/2026", actor="cli:legal")
    later = utcnow() + timedelta(days=2)
    assert vault.purge_expired(later, actor="cli:ops") == [expired]
    assert not (tmp_path / "vault" / expired[:2] / expired).exists()
    with pytest.raises(VaultItemNotFound, match="purged"):
        vault.get(expired)
    assert vault.get(held) == image_bytes and vault.get(keep) == image_bytes
    vault.set_hold(held, False, actor="cli:legal")
    assert vault.purge_expired(later) == [held]
    assert {i.id for i in vault.list()} == {keep}
    types = [e.event_type for e in AuditLog(vault.db).list()]
    assert types == ["vault.put"] * 3 + ["vault.hold", "vault.purge", "vault.release", "vault.purge"]
    assert AuditLog(vault.db).verify().ok


def test_preserve_rule_stores_the_upload_in_the_vault(db, tmp_path, image_bytes):
    from fastapi.testclient import TestClient

    from consentry.banks.service import BankService
    from consentry.keys import KeyStore
    from consentry.web.app import create_app

    md5 = hashlib.md5(image_bytes).hexdigest()
    BankService(db).create_bank("hub", "ncii")
    BankService(db).add_entry("hub", "md5", md5)
    key, _ = KeyStore(db).create("matcher")
    app = create_app(Settings(home=tmp_path, vault_key=KEY), db, background=False)
    try:
        with TestClient(app) as client:
            r = client.post("/v1/match", files={"file": ("x.png", io.BytesIO(image_bytes), "image/png")},
                            headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200 and r.json()["verdict"]["rules"] == ["block-known-abuse"]
            assert "vault" not in r.text
            items = app.state.policy.vault.list()
            assert len(items) == 1 and items[0].sha256 == hashlib.sha256(image_bytes).hexdigest()
            assert app.state.policy.vault.get(items[0].id) == image_bytes
    finally:
        app.state.consentry.match_log.close()


def test_cli_vault_purge(db, tmp_path, monkeypatch, image_bytes):
    from consentry.cli import app

    import consentry.config as config

    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("CONSENTRY_HOME", str(tmp_path))
    monkeypatch.setattr(config, "_settings", None)
    runner = CliRunner()
    r = runner.invoke(app, ["vault", "purge"])
    assert r.exit_code == 2 and "vault is off" in r.output
    monkeypatch.setenv("CONSENTRY_VAULT_KEY", KEY)
    monkeypatch.setattr(config, "_settings", None)
    v = Vault(config.get_settings(), db)
    item = v.put(image_bytes, retain_days=1)
    r = runner.invoke(app, ["vault", "purge"])
    assert r.exit_code == 0 and '"purged": 0' in r.stdout
    from sqlalchemy import update

    from consentry.db.models_audit import VaultItem

    with db.session() as s:
        s.execute(update(VaultItem).values(retain_until=utcnow() - timedelta(hours=1)))
    r = runner.invoke(app, ["vault", "purge"])
    assert r.exit_code == 0 and f'"items": ["{item}"]' in r.stdout


def test_vault_init_writes_a_key_file_the_service_then_uses(db, tmp_path, image_bytes, monkeypatch):
    """`consentry vault init` turns the vault on without an environment variable (README's console set-up)."""
    from consentry.cli import app
    from consentry.config import set_settings

    home = tmp_path / "home"
    settings = Settings(home=home)
    assert Vault.from_settings(settings, db) is None
    set_settings(settings)
    try:
        result = CliRunner().invoke(app, ["vault", "init"])
        assert result.exit_code == 0, result.output
        key_file = home / "vault.key"
        assert (key_file.stat().st_mode & 0o777) == 0o600
        vault = Vault.from_settings(settings, db)
        assert vault is not None
        item = vault.put(image_bytes, reason="test")
        assert vault.get(item) == image_bytes
        # a second init never replaces the key (items stored under it would be lost)
        before = key_file.read_bytes()
        again = CliRunner().invoke(app, ["vault", "init"])
        assert again.exit_code == 2 and "already exists" in again.output
        assert key_file.read_bytes() == before
    finally:
        set_settings(None)
