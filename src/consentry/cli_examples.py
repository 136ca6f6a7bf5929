"""A short example under every command's ``--help`` (as the epilog, kept as written).

Commands are looked up by their path (``"bank import"``); :func:`add_examples` is run once every
command is registered. A command whose own help already has an ``Example`` keeps it. A new command
needs an entry here: ``tests/test_cli_output.py`` checks that every command shows one.
"""

from __future__ import annotations

EXAMPLES: dict[str, list[str]] = {
    "hash": ["consentry hash photos/ clip.mp4 > hashes.jsonl",
             "consentry hash --format table --workers 2 photos/"],
    "match": ["consentry match photo.jpg --bank victims",
              "consentry match --pdq <hex> --sha1 <hex>",
              "consentry hash photos/ | consentry match --stdin"],
    "analyze": ["consentry analyze --format text photos/",
                "consentry analyze photo.jpg --report report.html"],
    "compare": ["consentry compare my-photo.jpg found-online.jpg --format text",
                "consentry compare my-photo.jpg found-online.jpg --report derivation.pdf"],
    "scan": ['consentry scan /evidence/device1 /evidence/export.zip --out case-42/ --examiner "J. Doe"',
             "consentry scan /evidence/device1 --out case-42/ --prompt-terms terms.txt   # flag prompts"],
    "serve": ["consentry serve --host 0.0.0.0 --port 8000 --workers 2"],
    "version": ["consentry version"],
    "bank create": ['consentry bank create victims --kind ncii --threshold pdq=31 --description "helpline"'],
    "bank list": ["consentry bank list --format json"],
    "bank show": ["consentry bank show victims --entries 10"],
    "bank delete": ["consentry bank delete old-list --yes"],
    "bank import": ["consentry bank import victims stopncii-fetch.json --format stopncii",
                    "cat list.txt | consentry bank import victims - --errors-out bad.jsonl"],
    "bank export": ["consentry bank export victims --format te --out victims.txt"],
    "bank add": ["consentry bank add victims photo.jpg clip.mp4 --tag confirmed"],
    "bank withdraw": ["consentry bank withdraw victims --pdq <hex>",
                      "consentry bank withdraw victims --entry 42"],
    "signals list": ["consentry signals list"],
    "signals enable": ["consentry signals enable vpdq"],
    "signals disable": ["consentry signals disable vpdq   # a photo-only service"],
    "bank update": ["consentry bank update trial --match-percent 10",
                    "consentry bank update victims --until 2030-01-31T12:00:00Z"],
    "bank disable": ["consentry bank disable victims --entry 42",
                     "consentry bank disable victims --entry 42 --until 2030-01-31T12:00:00Z"],
    "bank enable": ["consentry bank enable victims --entry 42"],
    "db upgrade": ["consentry db upgrade"],
    "content import": ["consentry content import catalogue.jsonl", "consentry content import catalogue.csv --batch 10000"],
    "content delete": ["consentry content delete post-123"],
    "content show": ["consentry content show post-123", "consentry content show https://example.org/p/123"],
    "content hits": ["consentry content hits --bank victims --limit 50"],
    "sweep": ["consentry sweep", "consentry sweep --bank victims", "consentry sweep --all-banks"],
    "keys create": ['consentry keys create --role matcher --name "upload path"'],
    "keys list": ["consentry keys list"],
    "keys revoke": ["consentry keys revoke 3"],
    "victim hash": ["consentry victim hash photo.jpg clip.mp4 --out hashes.json"],
    "victim submit": ["consentry victim submit hashes.json --hub https://hub.example.org --adult"],
    "victim status": ["consentry victim status CASE-NUMBER --hub https://hub.example.org"],
    "victim withdraw": ["consentry victim withdraw CASE-NUMBER --hub https://hub.example.org"],
    "exchange add": ["consentry exchange add --type stopncii --name stopncii --bank stopncii "
                     "--credentials-file stopncii.json",
                     "consentry exchange add --type ncmec --name ncmec-ngo --bank ncmec --credentials-file ncmec.json "
                     "--environment test --option database=ngo",
                     "consentry exchange add --type consentry-hub --url https://hub.example.org --key-stdin"],
    "exchange list": ["consentry exchange list"],
    "exchange remove": ["consentry exchange remove consentry-hub-hub.example.org"],
    "exchange pull": ["consentry exchange pull", "consentry exchange pull stopncii"],
    "exchange feedback": ["consentry exchange feedback --list --state failed",
                          "consentry exchange feedback stopncii --send",
                          "consentry exchange feedback consentry-hub-hub.example.org --status blocked --pdq <hex>"],
    "exchange rotate-credentials": ["consentry exchange rotate-credentials stopncii --credentials-file new.json"],
    "users create": ["consentry users create alice --role moderator"],
    "users list": ["consentry users list --format json"],
    "users disable": ["consentry users disable alice",
                      "consentry users disable alice --enable"],
    "cases list": ["consentry cases list --queue default --status open --status escalated"],
    "rules check": ["consentry rules check rules.yaml"],
    "rules test": ["consentry rules test rules.yaml --input sample.json"],
    "audit verify": ["consentry audit verify --expect-head SEQ:HASH"],
    "audit checkpoint": ["consentry audit checkpoint"],
    "audit list": ["consentry audit list --type bank.create --limit 20"],
    "vault init": ["consentry vault init"],
    "vault purge": ["consentry vault purge"],
    "vault list": ["consentry vault list --all"],
    "vault hold": ['consentry vault hold ITEM-ID --reason "court order 2024/17"'],
    "webhooks deliveries": ["consentry webhooks deliveries --status failed"],
    "report cybertip configure": ["consentry report cybertip configure --environment test "
                                  "--credentials-file ncmec-esp.json --reporter-file reporter.json --four-eyes"],
    "report cybertip draft": ["consentry report cybertip draft 42 --details-file platform-details.json",
                              "consentry report cybertip draft 42 --xml > report.xml"],
    "report cybertip approve": ["consentry report cybertip approve 42"],
    "report cybertip file": ["consentry report cybertip file 42"],
    "report cybertip status": ["consentry report cybertip status", "consentry report cybertip status 42"],
    "report cybertip retract": ["consentry report cybertip retract 42"],
    "report transparency": ["consentry report transparency --from 2026-01-01 --to 2026-06-30 --out transparency-2026h1/",
                            "consentry report transparency --from 2026-01-01 --to 2026-06-30 --out t/ --format csv"],
    "vault holds": ["consentry vault holds --all", "consentry vault holds --release-expired",
                    'consentry vault holds --release 3 --reason "court order 2027/5 ends the preservation"'],
    "notices list": ["consentry notices list --status open", "consentry notices list --regime take_it_down"],
    "notices show": ["consentry notices show N-7KQ2-93XD-4MPA"],
    "notices decide": ['consentry notices decide N-7KQ2-93XD-4MPA remove --reviewer alice --ground legal '
                       '--reference "47 U.S.C. 223a" --explanation "intimate image published without consent"'],
    "notices reject": ['consentry notices reject N-7KQ2-93XD-4MPA --reviewer alice --reason "no location given after contact"'],
    "notices escalate": ["consentry notices escalate"],
    "statements export": ["consentry statements export --out statements.jsonl", "consentry statements export --status pending"],
    "statements submit": ["CONSENTRY_DSA_TDB_TOKEN=... consentry statements submit"],
    "statements show": ["consentry statements show 3f1c9a7e-..."],
    "users grant-reporter": ["consentry users grant-reporter alice", "consentry users grant-reporter alice --revoke"],
}


def epilog(lines: list[str]) -> str:
    """``Example:`` and the command lines, one a line: Typer's Rich help keeps an epilog's line
    breaks (and ``python -m consentry CMD --help`` shows it below the options)."""
    return "Example" + ("s" if len(lines) > 1 else "") + ":\n\n" + "\n".join("  " + line for line in lines)


def command_paths(app, prefix: str = ""):
    """``(path, CommandInfo)`` for every command of a Typer app and its groups."""
    for info in app.registered_commands:
        name = info.name or info.callback.__name__.replace("_", "-")
        yield (prefix + name, info)
    for group in app.registered_groups:
        yield from command_paths(group.typer_instance, prefix + (group.name or "") + " ")


def reflow(doc: str) -> str:
    """A docstring with each paragraph on one line, as click shows help (Typer's Rich help keeps
    the source's line breaks and wraps again around them: ragged lines). A paragraph that starts
    with ``\\b`` is kept as written."""
    import inspect

    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(p.split("\n")) for p in paragraphs)


def add_examples(app) -> None:
    """Give every command its example and a help text without ragged line breaks."""
    for path, info in command_paths(app):
        doc = info.callback.__doc__ if info.callback else None
        if info.help is None and doc:
            info.help = reflow(doc)
        lines = EXAMPLES.get(path)
        own = (info.help or "") + (doc or "") + (info.epilog or "")
        if lines and "Example" not in own:
            info.epilog = epilog(lines)
