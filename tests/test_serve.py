"""What `make run` does: `consentry serve` on a fresh home prints the URL and an admin key once,
and the documented curl against the demo bank returns a match."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

import httpx

from conftest import _free_port

DEMO_PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def _serve(home, port, *extra):
    env = dict(os.environ, CONSENTRY_HOME=str(home))
    env.pop("DATABASE_URL", None)
    return subprocess.Popen([sys.executable, "-m", "consentry", "serve", "--port", str(port), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _read_until_ready(proc, base, timeout=60):
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                time.sleep(0.3)
                return "".join(lines)
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError("server did not become ready:\n" + "".join(lines))


def test_first_start_prints_url_and_key_and_demo_bank_matches(tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(tmp_path, port)
    try:
        out = _read_until_ready(proc, base)
        assert f"{base}/" in out
        key = re.search(r"(cst_[A-Za-z0-9_\-]{20,})", out).group(1)
        r = httpx.get(base + "/v1/match", params={"signal_type": "pdq", "value": DEMO_PDQ},
                      headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200
        hits = [m for m in r.json()["matches"] if m["bank"] == "demo"]
        assert hits[0]["distance"] == 0 and hits[0]["signal_type"] == "pdq"
        assert len(hits) == 3  # the bridge photo and two near-identical edits of it
        assert httpx.get(base + "/v1/match", params={"signal_type": "pdq", "value": DEMO_PDQ}).status_code == 401
    finally:
        proc.terminate()
        proc.wait(20)
    # a second start creates no new key and does not print one
    port = _free_port()
    proc = _serve(tmp_path, port)
    try:
        out = _read_until_ready(proc, f"http://127.0.0.1:{port}")
        assert "cst_" not in out
    finally:
        proc.terminate()
        proc.wait(20)


def test_listening_socket_for_several_workers_disables_nagle():
    """uvicorn's multi-process mode would otherwise leave Nagle on: ~40 ms per response."""
    import socket

    from consentry.cli import _listen_socket

    sock = _listen_socket("127.0.0.1", _free_port())
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        client = socket.create_connection(sock.getsockname())
        conn, _ = sock.accept()
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1  # inherited by accepted sockets
        conn.close()
        client.close()
    finally:
        sock.close()


def test_serve_with_two_workers_answers(tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(tmp_path, port, "--workers", "2")
    try:
        out = _read_until_ready(proc, base, timeout=90)
        key = re.search(r"(cst_[A-Za-z0-9_\-]{20,})", out).group(1)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as c:
            for _ in range(6):  # connections land on either worker; every one serves the demo bank
                assert c.get("/v1/match", params={"signal_type": "pdq", "value": DEMO_PDQ}).json()["matches"]
    finally:
        proc.terminate()
        proc.wait(20)
