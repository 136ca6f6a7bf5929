"""Server-rendered pages (Jinja2 + htmx, no build step): the review console and the victim page.

Every page module exposes a ``router``; :func:`consentry.web.app.create_app` includes the routers
listed in :data:`PAGE_ROUTERS`.  Templates live in ``web/templates/<area>/`` and static files in
``web/static/`` (served at ``/static``, no CDN: everything a page needs ships with the package).
"""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

WEB_DIR = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))

#: Dotted module paths of the page routers, included in this order.
PAGE_ROUTERS: tuple[str, ...] = ("consentry.web.pages.victim", "consentry.web.pages.console",
                                 "consentry.web.pages.landing",
                                 "consentry.web.pages.console_cybertip",  # CyberTipline panel (issue 15)
                                 "consentry.web.pages.console_notice",  # notice panel of a case (issue 14)
                                 "consentry.web.pages.notice")  # public notice form /report (issue 14)
