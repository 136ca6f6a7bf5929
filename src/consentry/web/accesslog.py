"""What the HTTP access log may say (``consentry serve``).

uvicorn logs every request as ``client - "METHOD path?query HTTP/x" status``. Two things must not
end up there:

- query strings: ``/v1/match?signal_type=pdq&value=<hash>&uploader_id=<id>`` carries the hash of
  the content and the platform's id of the person who posted it. Every request is logged by path
  only (the query string is dropped for all routes, so a new route cannot leak one).
- anything about the people who use the victim pages: requests to ``/submit``, ``/case``,
  ``/static/victim/`` and ``/v1/victim/`` are logged without the client's address and port and
  without the path (only ``[victim page]``, method and status, so error rates stay visible).

:func:`log_config` is uvicorn's default logging configuration with :class:`AccessLogFilter` and
:class:`AccessFormatter` on the ``uvicorn.access`` logger; it is passed by name so that every worker process installs it.
"""

from __future__ import annotations

import copy
import logging
from http import HTTPStatus

#: Path prefixes (whole segments) of the victim pages and their API.
VICTIM_PATHS = ("/submit", "/case", "/static/victim", "/v1/victim", "/report")  # /report: notices (issue 14)
REDACTED_CLIENT = "-"
REDACTED_PATH = "[victim page]"


def _is_victim_path(path: str) -> bool:
    """``/case`` and ``/case/x?y`` are victim paths; ``/cases`` (the review API) is not."""
    return any(path == p or path.startswith((p + "/", p + "?")) for p in VICTIM_PATHS)


class AccessLogFilter(logging.Filter):
    """Drops query strings from every access-log record and the client and path from victim ones."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or len(args) != 5:
            return True  # not the access-log line this filter knows; leave it alone
        client, method, path, http_version, status = args
        path = str(path)
        if _is_victim_path(path):
            client, path = REDACTED_CLIENT, REDACTED_PATH
        else:
            path = path.split("?", 1)[0]
        record.args = (client, method, path, http_version, status)
        return True


class AccessFormatter(logging.Formatter):
    """uvicorn's access line without colours (``INFO:     client - "GET /path HTTP/1.1" 200 OK``),
    made straight from the record: uvicorn's own formatter copies every record first, and the line
    is written for every request (a tenth of a hash lookup's cost over HTTP, issue 20.5)."""

    _PHRASES = {s.value: s.phrase for s in HTTPStatus}

    def format(self, record: logging.LogRecord) -> str:
        args = record.args
        if not isinstance(args, tuple) or len(args) != 5:
            return super().format(record)
        client, method, path, http_version, status = args
        phrase = self._PHRASES.get(status, "")
        return f'{(record.levelname + ":").ljust(9)} {client} - "{method} {path} HTTP/{http_version}" {status} {phrase}'


def log_config() -> dict:
    """uvicorn's logging configuration plus :class:`AccessLogFilter` and :class:`AccessFormatter` on
    the access logger."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["consentry_access"] = {"()": "consentry.web.accesslog.AccessLogFilter"}
    config["loggers"]["uvicorn.access"]["filters"] = ["consentry_access"]
    config["formatters"]["access"] = {"()": "consentry.web.accesslog.AccessFormatter"}
    return config
