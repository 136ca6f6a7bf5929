"""Fetch media by URL for hash/match/add (issue 22), safely.

- only ``http``/``https`` URLs on hosts or URL prefixes in ``CONSENTRY_URL_ALLOWLIST``
  (``example.com``, ``*.cdn.example.com`` or ``https://media.example.com/uploads/``); no user
  info, no ``.``/``..`` path segments;
- the host is resolved once, **every** address is checked (no private, loopback, link-local,
  reserved, multicast or unspecified address, IPv4-mapped IPv6 included) and the connection goes
  to that checked address (TLS still verifies the host name): DNS rebinding cannot slip another
  address in between the check and the connection;
- redirects only to the same host (and again on the allow list), at most a few;
- one deadline for the whole fetch (a slow body is cut off), a size limit (the upload limit),
  and the body is then sniffed and decoded exactly as an upload.

``url_fetch_allow_loopback`` (tests only) lets a test server on 127.0.0.1 be reached.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import unquote, urljoin, urlsplit

import httpcore

from consentry.errors import ConsentryError

REDIRECTS = (301, 302, 303, 307, 308)


class UrlRefused(ConsentryError):
    """The URL may not be fetched (scheme, host, address, allow list, redirect)."""

    code = "url-refused"


class UrlFetchFailed(ConsentryError):
    """The server could not be reached or did not answer 200."""

    code = "url-fetch-failed"


class UrlTooSlow(ConsentryError):
    code = "url-fetch-timeout"


class UrlTooLarge(ConsentryError):
    code = "too-large"


@dataclass(frozen=True)
class FetchPolicy:
    allowlist: tuple[str, ...]
    max_bytes: int
    timeout: float = 20.0
    max_redirects: int = 3
    allow_loopback: bool = False  # tests only

    @classmethod
    def from_settings(cls, settings) -> "FetchPolicy":
        return cls(tuple(settings.url_allowlist), int(settings.max_upload_bytes), float(settings.url_fetch_timeout),
                   int(settings.url_fetch_max_redirects), bool(settings.url_fetch_allow_loopback))


# ------------------------------------------------------------------------ checks
def address_allowed(ip: str, allow_loopback: bool = False) -> bool:
    """Only public unicast addresses (an IPv4-mapped or -compatible IPv6 address is judged as the
    IPv4 address it carries)."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address):
        inner = addr.ipv4_mapped or addr.sixtofour or (addr.teredo[1] if addr.teredo else None)
        if inner is None and int(addr) >> 32 == 0 and int(addr) > 1:  # ::a.b.c.d (deprecated form)
            inner = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        if inner is not None:
            addr = inner
    if allow_loopback and addr.is_loopback:
        return True
    return bool(addr.is_global) and not (addr.is_multicast or addr.is_reserved or addr.is_unspecified
                                         or addr.is_loopback or addr.is_link_local or addr.is_private)


def _host_matches(host: str, pattern: str) -> bool:
    pattern = pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def check_url(url: str, allowlist: Iterable[str]) -> tuple[str, str, int, str]:
    """(scheme, host, port, target) of an allowed URL, else :class:`UrlRefused`."""
    if not isinstance(url, str) or len(url) > 4096 or any(c in url for c in "\r\n\t\x00 "):
        raise UrlRefused("not a valid URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlRefused("not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlRefused(f"only http and https URLs can be fetched, not {scheme or 'this'!r}")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UrlRefused("URLs with user names or passwords are not fetched")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UrlRefused("the URL names no host")
    port = port or (443 if scheme == "https" else 80)
    path = parts.path or "/"
    if any(unquote(seg) in (".", "..") for seg in path.split("/")):
        raise UrlRefused("URL paths with '.' or '..' segments are not fetched")
    allowed = False
    for item in allowlist:
        item = item.strip()
        if not item:
            continue
        if "://" in item:  # a URL prefix: same scheme, host and port, path under it
            p = urlsplit(item)
            p_port = p.port or (443 if p.scheme.lower() == "https" else 80)
            if (p.scheme.lower() == scheme and (p.hostname or "").lower() == host and p_port == port
                    and path.startswith(p.path or "/")):
                allowed = True
        elif _host_matches(host, item):
            allowed = True
    if not allowed:
        raise UrlRefused(f"host {host!r} is not on the URL allow list (CONSENTRY_URL_ALLOWLIST)")
    target = path + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port, target


# ------------------------------------------------------------------------ connecting
class _CheckedBackend(httpcore.SyncBackend):
    """Resolves the host once, checks every address, and connects to a checked one."""

    def __init__(self, allow_loopback: bool):
        super().__init__()
        self.allow_loopback = allow_loopback

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError) as exc:
            raise UrlFetchFailed(f"cannot resolve {host!r}") from exc
        addrs = [info[4][0] for info in infos]
        if not addrs:
            raise UrlFetchFailed(f"cannot resolve {host!r}")
        bad = [a for a in addrs if not address_allowed(a, self.allow_loopback)]
        if bad:
            raise UrlRefused(f"{host!r} resolves to a private, loopback or otherwise non-public address")
        last: Exception | None = None
        for addr in addrs:
            try:
                return super().connect_tcp(addr, port, timeout=timeout, local_address=local_address,
                                           socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise UrlFetchFailed(f"cannot connect to {host!r}") from last


def fetch_url(url: str, policy: FetchPolicy, ssl_context: ssl.SSLContext | None = None) -> tuple[bytes, str]:
    """The body of ``url`` (status 200) and the final URL, under ``policy``."""
    if not policy.allowlist:
        raise UrlRefused("fetching by URL is off on this instance (CONSENTRY_URL_ALLOWLIST is empty)")
    deadline = time.monotonic() + policy.timeout
    scheme, host, port, target = check_url(url, policy.allowlist)
    first_host = host
    pool = httpcore.ConnectionPool(ssl_context=ssl_context or ssl.create_default_context(),
                                   network_backend=_CheckedBackend(policy.allow_loopback),
                                   max_connections=2, retries=0)
    try:
        for _hop in range(policy.max_redirects + 1):
            body, location = _get(pool, scheme, host, port, target, policy, deadline)
            if location is None:
                return body, url
            url = urljoin(url, location)
            scheme, host, port, target = check_url(url, policy.allowlist)
            if host != first_host:
                raise UrlRefused(f"redirect to another host ({host!r}) refused")
        raise UrlRefused(f"more than {policy.max_redirects} redirects")
    finally:
        pool.close()


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise UrlTooSlow("fetching the URL took too long")
    return left


def _get(pool, scheme: str, host: str, port: int, target: str, policy: FetchPolicy,
         deadline: float) -> tuple[bytes, str | None]:
    left = _left(deadline)
    default_port = 443 if scheme == "https" else 80
    headers = [(b"Host", (host if port == default_port else f"{host}:{port}").encode("idna")),
               (b"User-Agent", b"consentry-url-fetch"), (b"Accept", b"image/*, video/*, */*")]
    try:
        with pool.stream("GET", httpcore.URL(scheme=scheme.encode(), host=host.encode("idna"), port=port,
                                             target=target.encode("ascii", "strict")),
                         headers=headers,
                         extensions={"timeout": {"connect": left, "read": left, "write": left, "pool": left}}) as r:
            status = r.status
            hdrs = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in r.headers}
            if status in REDIRECTS:
                if "location" not in hdrs:
                    raise UrlFetchFailed(f"redirect ({status}) without a Location")
                return b"", hdrs["location"]
            if status != 200:
                raise UrlFetchFailed(f"the server answered {status}")
            length = hdrs.get("content-length", "")
            if length.isdigit() and int(length) > policy.max_bytes:
                raise UrlTooLarge(f"the file is over the limit of {policy.max_bytes} bytes")
            chunks: list[bytes] = []
            size = 0
            for chunk in r.iter_stream():
                size += len(chunk)
                if size > policy.max_bytes:
                    raise UrlTooLarge(f"the file is over the limit of {policy.max_bytes} bytes")
                chunks.append(chunk)
                _left(deadline)  # a slow body is cut off at the deadline, not per read
            return b"".join(chunks), None
    except (UnicodeError, ValueError):
        raise UrlRefused("not a valid URL") from None
    except (httpcore.TimeoutException,):
        raise UrlTooSlow("fetching the URL took too long") from None
    except httpcore.ConnectError as exc:
        raise UrlFetchFailed(f"cannot connect to {host!r}") from exc
    except (httpcore.ProtocolError, httpcore.NetworkError, httpcore.UnsupportedProtocol) as exc:
        raise UrlFetchFailed(f"fetching the URL failed: {type(exc).__name__}") from None
