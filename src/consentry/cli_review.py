"""``consentry rules``, ``consentry audit``, ``consentry vault`` and ``consentry webhooks``
commands (review area), thin over :mod:`consentry.policy.rules` and :mod:`consentry.review`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from consentry.cli_common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, err_console, fail, plural, print_table
from consentry.config import get_settings
from consentry.errors import ConsentryError

MAX_SAMPLE_BYTES = 16 * 1024 * 1024

rules_app = typer.Typer(help="Policy rules: check a rules file, dry-run it on a sample.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log: verify it, list events.", no_args_is_help=True)
vault_app = typer.Typer(help="The evidence vault (encrypted media): list, hold, purge expired items.",
                        no_args_is_help=True)
webhooks_app = typer.Typer(help="Webhook deliveries: the delivery log.", no_args_is_help=True)


def _db():
    from consentry.db import open_database

    try:
        return open_database()
    except Exception as exc:  # noqa: BLE001 - a bad DATABASE_URL or an unreachable server
        fail(f"cannot open the database: {str(exc).splitlines()[0][:200]}")


def _cli_actor() -> str:
    from consentry.cli_banks import _cli_actor as actor

    return actor()


def _load_rules(file: Optional[Path]):
    from consentry.policy.rules import RuleSet, RulesError

    try:
        return RuleSet.from_file(file) if file else RuleSet.default()
    except RulesError as exc:
        fail(str(exc))


# ------------------------------------------------------------------------------ rules


@rules_app.command("check")
def rules_check(file: Optional[Path] = typer.Argument(None, help="Rules YAML (default: the packaged rules).")) -> None:
    """Validate a rules file; prints its rules and sinks. Exit 1 with the rule and field on error."""
    rs = _load_rules(file)
    for r in rs.rules:
        acts = [a.type + (f":{a.queue}" if a.queue else "") + (f":{a.sink}" if a.sink else "") for a in r.actions]
        print(f"{r.name}{'' if r.enabled else ' (disabled)'}: {', '.join(acts) or 'no actions'}"
              f"{' [stop]' if r.stop else ''}")
    for s in rs.sinks.values():
        note = "" if s.secret() else f"  (warning: {s.secret_env} is not set)"
        print(f"sink {s.name}: {s.url}{note}")
    err_console.print(f"{rs.source}: {plural(len(rs.rules), 'rule')}, {plural(len(rs.sinks), 'sink')}: OK", highlight=False)


@rules_app.command("test")
def rules_test(
    file: Optional[Path] = typer.Argument(None, help="Rules YAML (default: the packaged rules)."),
    input: Path = typer.Option(..., "--input", "-i", help="Sample JSON: a match response (matches, allowed_by), "
                                                          "optional assessment and context {uploader_id, surface}."),
) -> None:
    """Dry-run the rules on a sample: prints the decision, the rules that fired and their actions.
    Nothing is blocked, queued, sent or stored."""
    from consentry.policy.rules import RuleContext, RulesError

    rs = _load_rules(file)
    try:
        if input.stat().st_size > MAX_SAMPLE_BYTES:
            fail(f"{input}: the sample is over {MAX_SAMPLE_BYTES} bytes")
        sample = json.loads(input.read_text(encoding="utf-8"))
    except FileNotFoundError:
        fail(f"{input}: no such file")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"{input}: not valid JSON ({exc})")
    try:
        ctx = RuleContext.from_dict(sample)
    except RulesError as exc:
        fail(f"{input}: {exc}")
    print(json.dumps(rs.evaluate(ctx).to_dict(), indent=2))


# ------------------------------------------------------------------------------ audit


def _checkpointer(with_sinks: bool = False):
    from consentry.review.checkpoints import Checkpointer, CheckpointError

    settings = get_settings()
    db = _db()
    dispatcher = None
    try:
        cp = Checkpointer.from_settings(settings, db)
        if with_sinks and cp.sinks:
            from consentry.review.webhooks import WebhookDispatcher

            rules = _load_rules(settings.rules_path)
            unknown = [n for n in cp.sinks if n not in rules.sinks]
            if unknown:
                fail(f"CONSENTRY_AUDIT_CHECKPOINT_SINKS names {unknown[0]!r}, which is not a sink in "
                     f"{rules.source} (sinks: {', '.join(rules.sinks) or 'none'})", EXIT_USAGE)
            dispatcher = WebhookDispatcher(db, lambda: rules.sinks)
            cp.dispatcher = dispatcher
    except CheckpointError as exc:
        fail(str(exc), EXIT_USAGE)
    return db, cp, dispatcher


@audit_app.command("verify")
def audit_verify(
    expect_head: Optional[List[str]] = typer.Option(
        None, "--expect-head", metavar="SEQ:HASH",
        help="A head printed by an earlier verify (or a checkpoint) and kept elsewhere: the chain must "
             "still contain it. Repeatable."),
    checkpoint_file: Optional[List[Path]] = typer.Option(
        None, "--checkpoint", metavar="FILE",
        help="A checkpoint JSON document (e.g. as received by a webhook sink): its signature is "
             "checked, then its head as with --expect-head. Repeatable."),
    public_key: Optional[str] = typer.Option(
        None, "--public-key", metavar="ed25519:BASE64",
        help="Pin the key --checkpoint documents must be signed with (default: this instance's key)."),
    no_local: bool = typer.Option(False, "--no-local-checkpoint",
                                  help="Do not check the latest checkpoint kept under CONSENTRY_HOME."),
) -> None:
    """Check the hash chain and print its head (SEQ:HASH). Exit 0 when intact; 1 with the first
    bad event and what happened.

    Keep the printed head somewhere else: a log cut short or wiped still forms a valid chain, but
    no longer contains that head. Example: consentry audit verify --expect-head 1042:9f3c...e1
    """
    from consentry.review.audit import AuditLog, parse_head
    from consentry.review.checkpoints import CheckpointError, verify_checkpoint

    db, cp, _ = _checkpointer()
    expected = []
    try:
        for text_ in expect_head or []:
            expected.append(parse_head(text_))
    except ConsentryError as exc:
        fail(str(exc), EXIT_USAGE)
    pinned = public_key
    for path in checkpoint_file or []:
        try:
            if path.stat().st_size > 64 * 1024:
                fail(f"{path}: over 64 KiB: not a checkpoint document", EXIT_USAGE)
            doc = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(doc, dict) and isinstance(doc.get("data"), dict) and "signature" not in doc:
                doc = doc["data"]  # a whole webhook payload: the checkpoint is its data
            if pinned is None and cp.has_key():
                pinned = cp.public_key()  # else: the key the document carries (integrity only)
            expected.append(verify_checkpoint(doc, pinned))
        except FileNotFoundError:
            fail(f"{path}: no such file", EXIT_USAGE)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            fail(f"{path}: not valid JSON ({exc})", EXIT_USAGE)
        except CheckpointError as exc:
            print(json.dumps({"ok": False, "problem": "checkpoint", "message": f"{path}: {exc}"}))
            fail(f"{path}: {exc}", EXIT_FAILED)
    from consentry.review.audit import set_checkpointer

    set_checkpointer(db, None if no_local else cp)
    result = AuditLog(db).verify(expected)
    print(json.dumps(result.to_dict()))
    if not result.ok:
        err_console.print(f"audit log BROKEN at event #{result.first_bad_seq} ({result.problem}): "
                          f"{result.message}", highlight=False, markup=False)
        raise typer.Exit(EXIT_FAILED)
    err_console.print(result.message, highlight=False)
    err_console.print(f"head: {result.head}  (keep it elsewhere; check later with --expect-head)",
                      highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(EXIT_OK)


@audit_app.command("checkpoint")
def audit_checkpoint(
    public_key: bool = typer.Option(False, "--public-key",
                                    help="Only print this instance's checkpoint public key (to pin it)."),
    no_send: bool = typer.Option(False, "--no-send", help="Write the local copy only, send no webhooks."),
) -> None:
    """Sign the current head of the audit chain (Ed25519), keep it under CONSENTRY_HOME and send it
    to the sinks in CONSENTRY_AUDIT_CHECKPOINT_SINKS as an audit.checkpoint webhook.

    Run it from cron (e.g. hourly) so the head lives off this machine. Example:
    CONSENTRY_AUDIT_CHECKPOINT_SINKS=auditor consentry audit checkpoint
    """
    from consentry.review.checkpoints import CheckpointError

    db, cp, dispatcher = _checkpointer(with_sinks=not public_key and not no_send)
    try:
        if public_key:
            print(cp.public_key())
            return
        doc = cp.checkpoint("manual", deliver_now=True)
    except CheckpointError as exc:
        fail(str(exc))
    finally:
        if dispatcher is not None:
            dispatcher.stop()
    print(json.dumps(doc))
    failed = [d for d in doc.get("deliveries", []) if d.get("status") != "delivered"]
    for d in failed:
        err_console.print(f"sink {d['sink']}: not delivered yet ({d.get('error') or d.get('status')}); "
                          "the service's webhook worker retries it", highlight=False, markup=False)
    err_console.print(f"checkpoint of head {doc['seq']}:{doc['hash']} written to {cp.path}", highlight=False,
                      markup=False, soft_wrap=True)


@audit_app.command("list")
def audit_list(
    after: int = typer.Option(0, "--after", help="Only events after this seq."),
    limit: int = typer.Option(100, "--limit", "-n", min=1, max=100_000),
    event_type: Optional[str] = typer.Option(None, "--type", help="Only this event type, e.g. bank.create."),
    actor: Optional[str] = typer.Option(None, "--actor"),
) -> None:
    """Print events as JSON lines, in chain order."""
    from consentry.review.audit import AuditLog

    log = AuditLog(_db())
    left = limit
    while left > 0:
        page = log.list(after_seq=after, limit=min(left, 1000), event_type=event_type, actor=actor)
        if not page:
            break
        for e in page:
            print(json.dumps(e.to_dict()))
        after, left = page[-1].seq, left - len(page)


# ------------------------------------------------------------------------------ vault


def _vault():
    from consentry.review.vault import Vault, VaultError

    try:
        vault = Vault.from_settings(get_settings(), _db())
    except VaultError as exc:
        fail(str(exc))
    if vault is None:
        fail("the evidence vault is off: run 'consentry vault init' (or set CONSENTRY_VAULT_KEY, base64 of "
             "32 bytes) and restart the service", EXIT_USAGE)
    return vault


@vault_app.command("init")
def vault_init() -> None:
    """Turn the evidence vault on: write a new random key to $CONSENTRY_HOME/vault.key (mode 0600).

    Restart the service afterwards. Keep a copy of the key off this machine: items stored under it
    cannot be read without it. Refused when a key file already exists.
    """
    from consentry.review.vault import VaultError, create_key_file

    settings = get_settings()
    if settings.vault_key:
        fail("CONSENTRY_VAULT_KEY is set: the vault already has a key (unset it to use a key file)", EXIT_USAGE)
    try:
        path = create_key_file(settings.home)
    except VaultError as exc:
        fail(str(exc), EXIT_USAGE)
    err_console.print(f"Vault key written to {path}. Restart 'consentry serve' to keep media for review; "
                      "keep a copy of this file somewhere safe.", highlight=False, soft_wrap=True)


@vault_app.command("purge")
def vault_purge() -> None:
    """Delete every item past its retention period, except items under a legal hold."""
    purged = _vault().purge_expired(actor=_cli_actor())
    print(json.dumps({"purged": len(purged), "items": purged}))


@vault_app.command("list")
def vault_list(all_: bool = typer.Option(False, "--all", help="Include purged items.")) -> None:
    """List vault items (metadata only, never content)."""
    for item in _vault().list(include_purged=all_):
        print(json.dumps(item.to_dict()))


@vault_app.command("hold")
def vault_hold(
    item_id: str = typer.Argument(..., help="Vault item id."),
    reason: str = typer.Option(..., "--reason", "-r", help="Why (case or court reference)."),
    release: bool = typer.Option(False, "--release", help="Lift the hold instead."),
) -> None:
    """Place (or lift) a legal hold: a held item is never purged."""
    from consentry.review.vault import VaultError

    try:
        info = _vault().set_hold(item_id, not release, reason=reason, actor=_cli_actor())
    except VaultError as exc:
        fail(str(exc))
    print(json.dumps(info.to_dict()))


# ------------------------------------------------------------------------------ webhooks


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    sink: Optional[str] = typer.Option(None, "--sink"),
    status: Optional[str] = typer.Option(None, "--status", help="pending, sending, delivered or failed."),
    limit: int = typer.Option(100, "--limit", "-n", min=1, max=1000),
) -> None:
    """Print the delivery log as JSON lines (attempts, status, last error, next attempt)."""
    from consentry.policy.rules import RuleSet
    from consentry.review.webhooks import WebhookDispatcher

    if status and status not in ("pending", "sending", "delivered", "failed"):
        fail("--status must be pending, sending, delivered or failed", EXIT_USAGE)
    dispatcher = WebhookDispatcher(_db(), lambda: RuleSet.default().sinks)
    try:
        for d in dispatcher.list(sink=sink, status=status, limit=limit):
            print(json.dumps(d.to_dict()))
    finally:
        dispatcher.stop()



# ------------------------------------------------------------------------------ users and cases
# (review part B: console users and the case queue)
import sys  # noqa: E402
from enum import Enum  # noqa: E402

users_app = typer.Typer(help="Review-console users (argon2 password hashes, one role each).",
                        no_args_is_help=True)
cases_app = typer.Typer(help="Review cases and the queue.", no_args_is_help=True)


class _Format(str, Enum):
    table = "table"
    json = "json"


def _table(columns: list[str], rows: list[list[str]]) -> None:
    print_table(columns, rows)


@users_app.command("create")
def users_create(
    name: str = typer.Argument(..., help="Username (letters, digits, . _ - @)."),
    role: str = typer.Option(..., "--role", "-r", help="admin, curator, moderator or auditor."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
) -> None:
    """Create a console user; prompts for the password (twice) unless --password-stdin."""
    from consentry.review.users import UserService

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = UserService(_db()).create(name, password, role)
    except ConsentryError as exc:
        fail(str(exc), EXIT_USAGE if exc.code == "user_error" else EXIT_FAILED)
    print(f"created user {user.username} ({user.role})")


@users_app.command("list")
def users_list(fmt: _Format = typer.Option(_Format.table, "--format", "-f")) -> None:
    """List console users."""
    from consentry.review.users import UserService

    users = UserService(_db()).list()
    if fmt is _Format.json:
        print(json.dumps([u.to_dict() for u in users], indent=2))
        return
    _table(["username", "role", "disabled", "created", "last login"],
           [[u.username, u.role, "yes" if u.disabled else "no", f"{u.created_at:%Y-%m-%d %H:%M}",
             f"{u.last_login_at:%Y-%m-%d %H:%M}" if u.last_login_at else "-"] for u in users])


@users_app.command("disable")
def users_disable(
    name: str = typer.Argument(...),
    enable: bool = typer.Option(False, "--enable", help="Re-enable instead."),
) -> None:
    """Disable a user (ends their sessions at once), or re-enable with --enable."""
    from consentry.review.users import UserService

    try:
        user = UserService(_db()).set_disabled(name, not enable)
    except ConsentryError as exc:
        fail(str(exc))
    print(f"user {user.username} is {'disabled' if user.disabled else 'enabled'}")


@cases_app.command("list")
def cases_list(
    queue: Optional[str] = typer.Option(None, "--queue", "-q"),
    status: Optional[List[str]] = typer.Option(None, "--status", "-s",
                                               help="open, claimed, pending_approval, escalated, decided "
                                                    "(repeatable; default: all but decided)"),
    limit: int = typer.Option(100, "--limit", min=1, max=1000),
    fmt: _Format = typer.Option(_Format.table, "--format", "-f"),
) -> None:
    """List cases in queue order (priority, then SLA due time)."""
    from consentry.review.cases import CASE_STATUSES, OPEN_STATUSES, CaseService

    statuses = status or list(OPEN_STATUSES)
    bad = [s for s in statuses if s not in CASE_STATUSES]
    if bad:
        fail(f"unknown status {bad[0]!r}; use one of {', '.join(CASE_STATUSES)}", EXIT_USAGE)
    cases = CaseService(_db()).list_queue(queue=queue, statuses=statuses, limit=limit)
    if fmt is _Format.json:
        print(json.dumps([c.to_dict() for c in cases], indent=2))
        return
    _table(["case", "priority", "sla due (UTC)", "status", "queue", "uploader", "items", "claimed by"],
           [[str(c.id), str(c.priority), f"{c.sla_due_at:%Y-%m-%d %H:%M}" + (" overdue" if c.overdue else ""),
             c.status, c.queue, c.uploader_id or "-", str(c.item_count), c.claim_holder() or "-"] for c in cases])

