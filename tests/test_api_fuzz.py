"""Property-based fuzzing of the whole HTTP API from its own OpenAPI schema (schemathesis):
whatever a client sends, the answer is never a server error (5xx) and never a stack trace."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from consentry.banks.service import BankService
from consentry.config import Settings
from consentry.db import open_database
from consentry.keys import KeyStore
from consentry.web.app import create_app

_HOME = Path(tempfile.mkdtemp(prefix="consentry-fuzz-"))
_SETTINGS = Settings(home=_HOME, match_rate_limit=0)
_DB = open_database(_SETTINGS)
_KEY, _ = KeyStore(_DB).create("admin", "fuzz")
BankService(_DB).create_bank("demo", "ncii")  # a bank the generated paths can hit
APP = create_app(_SETTINGS, _DB, background=False)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_input_makes_a_server_error(case):
    response = case.call(headers={"Authorization": f"Bearer {_KEY}"})
    case.validate_response(response, checks=[not_a_server_error])
    assert "Traceback" not in response.text
