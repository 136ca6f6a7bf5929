"""FastAPI application factory (``consentry serve``).

Each worker process opens the database (migrating it), loads the in-memory indexes in the
background (``/readyz`` says when they are ready) and tails the change log every
``index_refresh_seconds``, so adds and withdrawals made through any worker reach every worker.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from consentry import __version__
from consentry.banks.matcher import Matcher
from consentry.banks.service import BankService
from consentry.config import Settings, get_settings
from consentry.db import Database, open_database
from consentry.keys import KeyStore
from consentry.web import problems
from consentry.web.deps import AppState
from consentry.limits_store import LimitStore
from consentry.web.limits import BodyLimitMiddleware, MatchLogWriter, RateLimiter, TimeoutMiddleware

log = logging.getLogger("consentry.web")


class _Tailer:
    def __init__(self, matcher: Matcher, interval: float):
        self.matcher, self.interval = matcher, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="index-tailer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self.matcher.load()
        except Exception:  # noqa: BLE001
            log.exception("index load failed; retrying")
        last_sweep = 0.0
        while not self._stop.wait(self.interval):
            try:
                if time.monotonic() - last_sweep >= 10.0:  # timed disables that ran out (issue 22)
                    last_sweep = time.monotonic()
                    self.matcher.banks.expire_timed()
                if not self.matcher.loaded:
                    self.matcher.load()
                else:
                    self.matcher.refresh()
            except Exception:  # noqa: BLE001 - the database may be briefly away; keep serving
                log.exception("index refresh failed")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class ConsentryAPI(FastAPI):
    """FastAPI with ``GET /v1/match``'s fast path (web/fastpath.py, issue 20.5) in front of every
    middleware; ``match_fast_path = False`` (tests) leaves the declared route alone."""

    match_fast_path = True

    def build_middleware_stack(self):
        stack = super().build_middleware_stack()
        if not self.match_fast_path:
            return stack
        from consentry.web.fastpath import MatchFastPath

        return MatchFastPath(stack)


def create_app(settings: Settings | None = None, db: Database | None = None, *, background: bool = True) -> FastAPI:
    """Build the app. ``background=False`` (tests) loads the index synchronously and does not tail."""
    settings = settings or get_settings()
    db = db or open_database(settings)
    # compacted PDQ indexes are memory-mapped from the home, shared by this host's workers (issue 20)
    matcher = Matcher(db, settings.signal_types, snapshot_dir=settings.home / "index")
    consentry_state = AppState(
        settings=settings, banks=BankService(db), matcher=matcher, keys=KeyStore(db),
        match_log=MatchLogWriter(db), rate_limiter=RateLimiter(
            settings.match_rate_limit, settings.match_rate_burst or None,  # shared by all workers (issue 23)
            store=LimitStore(db), scope="api_key"),
    )
    tailer = _Tailer(matcher, settings.index_refresh_seconds)
    from consentry.exchanges.base import ExchangePuller  # subscribed hubs (issue 8)

    puller = ExchangePuller(consentry_state.banks, settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if background:
            tailer.start()
            puller.start()
            _app.state.sweep_runner.start()  # the ledger sweep (issue 14)
            _app.state.notice_runner.start()  # notices escalated before their clock runs out (issue 14)
        yield
        if background:
            tailer.stop()
            puller.stop()
            _app.state.sweep_runner.stop()
            _app.state.notice_runner.stop()
        consentry_state.match_log.close()
        _app.state.policy.close()

    if not background:
        matcher.load()

    app = ConsentryAPI(
        title="Consentry",
        version=__version__,
        summary="Hash, match and assess media against known abuse and non-consensual imagery.",
        lifespan=lifespan,
        docs_url=None,  # served by _install_docs from packaged assets (works offline, no CDN)
        redoc_url=None,
    )
    app.state.consentry = consentry_state
    app.state.keys = consentry_state.keys
    from consentry.policy.runtime import PolicyRuntime  # rules, webhooks, vault (issue 6 part A)

    app.state.policy = PolicyRuntime(settings, db)
    from consentry.review.audit import set_checkpointer  # signed audit heads (issue 12.10)
    from consentry.review.checkpoints import Checkpointer

    set_checkpointer(db, Checkpointer.from_settings(settings, db, app.state.policy.webhooks))
    from consentry.web.review_deps import build_review_state  # cases, console users (issue 6)

    app.state.review = build_review_state(settings, consentry_state.banks, app.state.policy.vault)
    app.state.policy.on_enqueue(app.state.review.cases.enqueue_handler())  # enqueue actions open cases
    from consentry.ledger import install as install_ledger  # content ledger and sweep (issue 14)

    install_ledger(app, settings, db)
    from consentry.notices import install as install_notices  # notices, statements of reasons (issue 14)

    install_notices(app, settings, db)
    problems.install(app)

    from consentry.web.api import analysis, banks, hashing, health, matching

    app.include_router(health.router)
    app.include_router(hashing.router)
    app.include_router(matching.router)
    app.include_router(banks.router)
    from consentry.web.api import audit as audit_api  # audit log and webhook deliveries (issue 6 part A)

    app.include_router(audit_api.router)
    from consentry.web.api import cases as cases_api  # review cases (issue 6 part B)

    app.include_router(cases_api.router)
    from consentry.web.api import exchanges as exchanges_api  # exchange status, feedback outbox (issue 13)

    app.include_router(exchanges_api.router)
    app.include_router(analysis.router)
    from consentry.web.api import compare as compare_api  # derivation proof (issue 16)

    app.include_router(compare_api.router)
    from consentry.web.api import by_url, compare_hashes, instance_settings  # issue 22

    app.include_router(compare_hashes.router)
    app.include_router(instance_settings.router)
    app.include_router(by_url.router)
    from consentry.web.api import cybertipline  # NCMEC CyberTipline reports, holds (issue 15)

    app.include_router(cybertipline.router)
    from consentry.web.api import transparency as transparency_api  # transparency report (issue 15)

    app.include_router(transparency_api.router)
    from consentry.web.api import content as content_api  # content ledger (issue 14)

    app.include_router(content_api.router)
    from consentry.web.api import notices as notices_api  # notices, statements of reasons (issue 14)

    app.include_router(notices_api.router)

    import importlib

    from fastapi.staticfiles import StaticFiles

    from consentry.web.pages import PAGE_ROUTERS, STATIC_DIR

    for module in PAGE_ROUTERS:
        app.include_router(importlib.import_module(module).router)
    _install_docs(app)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")

    app.add_middleware(TimeoutMiddleware, seconds=settings.request_timeout)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes)
    from consentry.web.auth import AuthFirstMiddleware  # 401 before any body is received (outermost)

    app.add_middleware(AuthFirstMiddleware)
    return app


DOCS_ASSETS = "/docs/assets"


def _install_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from the ``swagger-ui-py`` distribution (its packaged static files),
    so the page works offline and loads nothing from another site. The Authorize button takes an
    API key (the bearer scheme is declared by ``web.auth``)."""
    import swagger_ui
    from fastapi import Depends
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    from consentry.web.auth import public

    assets = Path(swagger_ui.__file__).resolve().parent / "static"

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse,
             dependencies=[Depends(public("the API reference describes the API; calls still need a key"))])
    def swagger_docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url, title=f"{app.title} {app.version} — API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
            oauth2_redirect_url=None,
            swagger_ui_parameters={"validatorUrl": None},  # no badge from validator.swagger.io
        )

    app.mount(DOCS_ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")


def iter_api_routes(routes):
    """Every APIRoute under ``routes``, looking inside included routers (FastAPI >= 0.16x nests them)."""
    from fastapi.routing import APIRoute

    for r in routes:
        if isinstance(r, APIRoute):
            yield r
        sub = getattr(r, "original_router", None) or getattr(r, "router", None)
        if sub is not None and hasattr(sub, "routes"):
            yield from iter_api_routes(sub.routes)
