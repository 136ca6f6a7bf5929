"""A local stand-in for the DSA Transparency Database API (tests only).

``POST /api/v1/statement`` and ``POST /api/v1/statements`` as documented at
https://transparency.dsa.ec.europa.eu/page/api-documentation: a bearer token, JSON bodies,
``201`` with the stored statement(s) and a ``uuid``; ``422`` with ``errors`` (keyed
``statement_<i>`` for the multiple endpoint, where none is created when any is invalid); a
``puid`` already stored answers ``422`` with the ``existing`` statement; at most 100 a call. Each
statement is checked against the kept schema; what was stored is kept in ``statements``.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from consentry.notices.statements import schema_errors


class TDBStandIn:
    def __init__(self, token: str = "X|test-token"):
        self.token = token
        self.statements: dict[str, dict] = {}  # puid -> stored
        self.calls: list[tuple[str, int]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                outer.calls.append((self.path, code))
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # noqa: N802
                if self.headers.get("Authorization") != f"Bearer {outer.token}":
                    return self._send(401, {"message": "Unauthenticated."})
                if self.headers.get("Content-Type") != "application/json":
                    return self._send(415, {"message": "JSON only"})
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                except ValueError:
                    return self._send(400, {"message": "not JSON"})
                if self.path == "/api/v1/statement":
                    errors = outer._errors(body)
                    if errors is not None:
                        return self._send(422, errors)
                    return self._send(201, outer._store(body))
                if self.path == "/api/v1/statements":
                    items = body.get("statements") if isinstance(body, dict) else None
                    if not isinstance(items, list) or not 1 <= len(items) <= 100:
                        return self._send(422, {"message": "1 to 100 statements", "errors": {"statements": ["invalid"]}})
                    errors = {f"statement_{i}": e["errors"] for i, s in enumerate(items)
                              if (e := outer._errors(s)) is not None}
                    if len({s.get("puid") for s in items}) != len(items):
                        errors["statements"] = ["duplicate puid in the call"]
                    if errors:
                        return self._send(422, {"errors": errors})
                    return self._send(201, {"statements": [outer._store(s) for s in items]})
                return self._send(404, {"message": "not found"})

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _errors(self, body) -> dict | None:
        if not isinstance(body, dict):
            return {"message": "invalid", "errors": {"statement": ["must be an object"]}}
        problems = schema_errors(body)
        if problems:
            return {"message": problems[0], "errors": {p.split(":")[0]: [p] for p in problems}}
        if body["puid"] in self.statements:
            return {"message": "The identifier given is not unique within this platform.",
                    "errors": {"puid": ["The identifier given is not unique within this platform."]},
                    "existing": self.statements[body["puid"]]}
        return None

    def _store(self, body: dict) -> dict:
        u = str(uuid.uuid4())
        stored = {**body, "uuid": u, "created_at": "2026-12-02 12:00:00", "platform_name": "Test platform",
                  "permalink": f"{self.url}/statement/{u}", "self": f"{self.url}/api/v1/statement/{u}"}
        self.statements[body["puid"]] = stored
        return stored

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
