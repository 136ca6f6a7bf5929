#!/usr/bin/env bash
# Smoke test of a plain install: the package WITHOUT extras in a throw-away venv (what `make run`
# gets on a clean clone). Catches a run-time import that only the test extras happen to provide,
# and package data (templates, static files) missing from the built wheel.
#   1. pip install . (no -e, no extras) into a venv under a temp dir (the pip cache is reused)
#   2. import every module of consentry
#   3. `consentry serve` on a free port with a temp home; /healthz, /, /docs and a docs asset
#      must answer 200; then stop it (the server process itself: the subshell execs it)
# Usage: bash scripts/smoke-clean-venv.sh   (PYTHON=python3.12 to pick the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/consentry-smoke.XXXXXX")
pid=""
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" 2>/dev/null || true; fi
  # a process still writing (numba's cache) can refill a folder while it is removed: try again
  rm -rf "$work" 2>/dev/null || { sleep 1; rm -rf "$work"; }
}
trap cleanup EXIT

echo "smoke: installing consentry without extras into $work/venv"
"$PYTHON" -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install -q --disable-pip-version-check .

echo "smoke: importing every module"
(cd "$work" && "$py" - <<'EOF'
import importlib, pkgutil, sys
import consentry
failed = []
count = 0
for info in pkgutil.walk_packages(consentry.__path__, "consentry."):
    if info.name == "consentry.__main__" or info.name.startswith("consentry.db.migrations."):
        continue  # `python -m consentry` runs the CLI; migration scripts are run by Alembic only
    count += 1
    try:
        importlib.import_module(info.name)
    except Exception as exc:  # noqa: BLE001
        failed.append(f"{info.name}: {type(exc).__name__}: {exc}")
if failed:
    print("cannot import without the test extras:\n  " + "\n  ".join(failed), file=sys.stderr)
    sys.exit(1)
print(f"smoke: {count} modules import")
EOF
)

echo "smoke: PDQ kernels compile once, equal pdqhash, then load from numba's cache"
pdq_check='
import sys, numpy as np, pdqhash
from consentry.signals import pdq_kernels as k
from consentry.signals.pdq import reference_pdq
img = np.random.default_rng(5).integers(0, 256, (300, 410, 3), dtype=np.uint8)
assert k.pdq_hash(img) == reference_pdq(img) and k.pdq_hash_dihedral(img) == reference_pdq(img, True)
s = k._pdq.stats
hits, misses = sum(s.cache_hits.values()), sum(s.cache_misses.values())
print(f"smoke: PDQ == pdqhash; numba cache hits {hits} misses {misses} (cached={k.CACHED})")
if sys.argv[1] == "second" and (misses or not hits):
    sys.exit("smoke: the second process compiled the PDQ kernels again (numba cache not used)")
'
(cd "$work" && "$py" -c "$pdq_check" first && "$py" -c "$pdq_check" second)

port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "smoke: consentry serve on port $port"
(cd "$work" && exec env -u DATABASE_URL CONSENTRY_HOME="$work/home" HOME="$work" CONSENTRY_EXCHANGE_PULL_SECONDS=0 \
   "$work/venv/bin/consentry" serve --port "$port" >"$work/serve.log" 2>&1) &
pid=$!
"$py" - "$port" "$work/serve.log" <<'EOF'
import sys, time, urllib.request
port, log = sys.argv[1], sys.argv[2]
base = f"http://127.0.0.1:{port}"
deadline = time.monotonic() + 120
while True:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
            if r.status == 200:
                break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit("the service did not answer /healthz within 120 s:\n" + open(log).read())
    time.sleep(0.3)
checks = {"/healthz": "application/json", "/": "text/html", "/docs": "text/html",
          "/docs/assets/swagger-ui-bundle.js": "javascript", "/openapi.json": "application/json"}
for path, kind in checks.items():
    with urllib.request.urlopen(base + path, timeout=10) as r:
        ctype = r.headers.get("content-type", "")
        if r.status != 200 or kind not in ctype:
            sys.exit(f"{path}: {r.status} {ctype}\n" + open(log).read())
    print(f"smoke: {path} 200 {ctype}")
EOF
kill "$pid"
wait "$pid" 2>/dev/null || true
pid=""
echo "smoke: ok"
