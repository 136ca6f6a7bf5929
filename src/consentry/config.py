"""Settings from the environment (``CONSENTRY_*``), with safe defaults.

One ``Settings`` object is built per process by :func:`get_settings`; tests build their own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

#: Name of a project-local home directory, found by walking up from the working directory.
LOCAL_HOME_NAME = ".consentry"


def resolve_home(cwd: Path | None = None) -> tuple[Path, str]:
    """The home every process (service and CLI) uses, and why it was chosen.

    1. ``CONSENTRY_HOME`` when set;
    2. else an existing ``.consentry`` directory in the working directory or one of its parents
       (the way git finds ``.git``), so a project-local home keeps working from any sub-directory;
    3. else the user's data directory (``$XDG_DATA_HOME/consentry``, by default
       ``~/.local/share/consentry`` on Linux), the same from every directory.
    """
    raw = os.environ.get("CONSENTRY_HOME", "").strip()
    if raw:
        return Path(raw).expanduser().absolute(), "CONSENTRY_HOME"
    here = (cwd or Path.cwd()).absolute()
    for d in (here, *here.parents):
        candidate = d / LOCAL_HOME_NAME
        if candidate.is_dir():
            return candidate, f"found {LOCAL_HOME_NAME} in {d}"
    import platformdirs

    return platformdirs.user_data_path("consentry", appauthor=False), "user data directory"


def ensure_home(home: Path) -> bool:
    """Create ``home`` readable by its owner only (0700) when missing; True when it was created.

    An existing directory keeps its mode (it may be shared on purpose, e.g. a mounted volume)."""
    if home.is_dir():
        return False
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(home, 0o700)  # mkdir's mode is masked by the umask
    return True


def create_private_file(path: Path) -> bool:
    """Create an empty ``path`` with mode 0600 when missing (the SQLite database: its -wal and -shm
    files take the database file's mode); True when it was created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def _env_proxies(name: str) -> tuple[str, ...]:
    """Comma-separated IP addresses or CIDR networks (``10.0.0.0/8, ::1``), validated."""
    import ipaddress

    out = []
    for item in os.environ.get(name, "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError as exc:
            raise ValueError(f"{name}: {item!r} is not an IP address or CIDR network "
                             "(e.g. 127.0.0.1, 10.0.0.0/8)") from exc
        out.append(item)
    return tuple(out)


def _env_list(name: str) -> tuple[str, ...]:
    """Comma- or space-separated items."""
    raw = os.environ.get(name, "").replace(",", " ")
    return tuple(item for item in raw.split() if item)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


@dataclass(frozen=True)
class MediaLimits:
    """Bounds applied to untrusted media before and during decoding."""

    max_bytes: int = 200 * 1024 * 1024  # one image file
    max_video_bytes: int = 4 * 1024**3  # one video file (hashed in a stream, never held in memory)
    max_pixels: int = 100_000_000  # width * height of one image or frame
    max_video_seconds: float = 4 * 3600.0
    max_video_frames: int = 500_000  # frames decoded for one video
    video_seconds_per_hash: float = 1.0  # vPDQ sampling rate (0 = every frame)
    # > 0: JPEGs may be decoded at 1/2..1/8 scale (DCT domain) keeping this many pixels a side.
    # Faster, but PDQ is then no longer bit-identical to the reference; 0 = off (default).
    jpeg_draft_min_side: int = 0
    # memory a decoded image may take (width x height x bytes per pixel as Pillow stores the mode,
    # read from the header before decoding): a small 16-bit or float file can decode to gigabytes
    max_decoded_bytes: int = 512 * 1024 * 1024
    # images with more pixels are box-reduced by an integer factor right after decoding (JPEGs
    # decode at 1/2..1/8 scale): PDQ costs ~25 bytes a pixel, so a 100 Mpixel image would take
    # ~3 GB; the hash then differs from the full-size one by a few bits. 0 = never reduce
    max_hash_pixels: int = 24 * 1024 * 1024
    max_video_pixels: int = 4096 * 4096  # width * height of one video frame (from the header)
    max_decode_seconds: float = 1800.0  # one image or video decode (0 = no limit)
    max_concurrent_decodes: int = 2  # decodes at once per process; others wait (0 = no limit)
    # an uploaded photo is also matched by the PDQ of its trimmed copy (letterbox / pillarbox bars
    # removed) and of the photo inside a screenshot (issue 21): a few ms more per upload
    canonical_query: bool = True
    # a photo added to a bank from its file also stores the PDQ of its centre and corner crops,
    # small rotations and its borderless copy (issue 21): 27 PDQs per added photo (measured
    # 0.36 s for a 640x480 picture, 1.2 s for 12 Mpixel)
    canonical_stored: bool = True

    @classmethod
    def from_env(cls) -> "MediaLimits":
        d = cls()
        return cls(
            max_bytes=_env_int("CONSENTRY_MAX_BYTES", d.max_bytes),
            max_video_bytes=_env_int("CONSENTRY_MAX_VIDEO_BYTES", d.max_video_bytes),
            max_pixels=_env_int("CONSENTRY_MAX_PIXELS", d.max_pixels),
            max_video_seconds=_env_float("CONSENTRY_MAX_VIDEO_SECONDS", d.max_video_seconds),
            max_video_frames=_env_int("CONSENTRY_MAX_VIDEO_FRAMES", d.max_video_frames),
            video_seconds_per_hash=_env_float(
                "CONSENTRY_VIDEO_SECONDS_PER_HASH", d.video_seconds_per_hash
            ),
            jpeg_draft_min_side=_env_int("CONSENTRY_JPEG_DRAFT_MIN_SIDE", d.jpeg_draft_min_side),
            max_decoded_bytes=_env_int("CONSENTRY_MAX_DECODED_BYTES", d.max_decoded_bytes),
            max_hash_pixels=_env_int("CONSENTRY_MAX_HASH_PIXELS", d.max_hash_pixels),
            max_video_pixels=_env_int("CONSENTRY_MAX_VIDEO_PIXELS", d.max_video_pixels),
            max_decode_seconds=_env_float("CONSENTRY_MAX_DECODE_SECONDS", d.max_decode_seconds),
            max_concurrent_decodes=_env_int("CONSENTRY_MAX_CONCURRENT_DECODES", d.max_concurrent_decodes),
            canonical_query=_env_int("CONSENTRY_CANONICAL_QUERY", int(d.canonical_query)) != 0,
            canonical_stored=_env_int("CONSENTRY_CANONICAL_STORED", int(d.canonical_stored)) != 0,
        )

    def with_(self, **changes) -> "MediaLimits":
        return replace(self, **changes)


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=lambda: resolve_home()[0])
    database_url: str | None = None
    limits: MediaLimits = field(default_factory=MediaLimits)
    max_upload_bytes: int = 200 * 1024 * 1024  # one HTTP request body
    request_timeout: float = 120.0  # seconds; 0 = none
    match_rate_limit: float = 2000.0  # match/hash/analyze requests per second per API key (whole instance); 0 = off
    match_rate_burst: float = 0.0  # the bucket's size; 0 = twice the rate
    index_refresh_seconds: float = 0.2  # how often each worker tails the change log
    # policy rules YAML (None = the packaged default rules); evidence vault: base64 of a 32-byte
    # key (None = vault off) and the default retention of preserved items
    rules_path: Path | None = None
    vault_key: str | None = field(default=None, repr=False)
    vault_retain_days: int = 90
    # review console: reveals per reviewer per UTC day before the break prompt; claim and login lifetimes
    exposure_budget: int = 50
    review_claim_minutes: int = 30
    console_session_hours: float = 8.0
    # victim hub: the bank victims' hashes go to ("" turns the public victim routes off), limits,
    # and where to send someone whose images show a person under 18 ("Title|URL;Title|URL")
    victim_hub_bank: str = "victim-hub"
    victim_max_hashes: int = 100
    victim_submissions_per_hour: float = 20.0  # per client IP (whole instance)
    victim_lookups_per_minute: float = 30.0  # status/withdraw requests per client IP (whole instance)
    victim_pin_attempts: int = 5  # wrong PINs before a case is locked (the lock then doubles)
    victim_minor_text: str = ("Images of anyone under 18 are handled by child-protection services, "
                              "not by this service. They can help you remove them:")
    victim_minor_links: str = "NCMEC Take It Down|https://takeitdown.ncmec.org/"
    exchange_pull_seconds: float = 300.0  # background pull of every exchange; 0 = off
    secret_key: str | None = None  # encrypts exchange keys; default: $CONSENTRY_HOME/secret.key
    # reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (IPs or CIDRs); none by
    # default, so a client cannot choose the IP that per-IP limits and the audit log see
    trusted_proxies: tuple[str, ...] = ()
    # signal types computed and matched when the database stores no choice (empty: all); changed
    # while running with PUT /v1/settings/signal-types or `consentry signals enable/disable`
    signal_types: tuple[str, ...] = ()
    # hash/match/add by URL (keys created with --allow-url): allowed hosts ("example.com",
    # "*.cdn.example.com") or URL prefixes ("https://media.example.com/uploads/"); empty: off
    url_allowlist: tuple[str, ...] = ()
    url_fetch_timeout: float = 20.0  # seconds for the whole fetch (connect, redirects, body)
    url_fetch_max_redirects: int = 3
    # TESTS ONLY: let URL fetches reach loopback (a local test server); never set in production
    url_fetch_allow_loopback: bool = False

    @classmethod
    def from_env(cls) -> "Settings":
        d = cls()
        home = resolve_home()[0]
        return cls(
            home=home,
            database_url=os.environ.get("DATABASE_URL") or None,
            limits=MediaLimits.from_env(),
            max_upload_bytes=_env_int("CONSENTRY_MAX_UPLOAD_BYTES", d.max_upload_bytes),
            request_timeout=_env_float("CONSENTRY_REQUEST_TIMEOUT", d.request_timeout),
            match_rate_limit=_env_float("CONSENTRY_MATCH_RATE_LIMIT", d.match_rate_limit),
            match_rate_burst=_env_float("CONSENTRY_MATCH_RATE_BURST", d.match_rate_burst),
            index_refresh_seconds=_env_float("CONSENTRY_INDEX_REFRESH_SECONDS", d.index_refresh_seconds),
            rules_path=Path(os.environ["CONSENTRY_RULES_PATH"]).expanduser()
            if os.environ.get("CONSENTRY_RULES_PATH") else None,
            vault_key=os.environ.get("CONSENTRY_VAULT_KEY") or None,
            vault_retain_days=_env_int("CONSENTRY_VAULT_RETAIN_DAYS", d.vault_retain_days),
            exposure_budget=_env_int("CONSENTRY_EXPOSURE_BUDGET", d.exposure_budget),
            review_claim_minutes=_env_int("CONSENTRY_REVIEW_CLAIM_MINUTES", d.review_claim_minutes),
            console_session_hours=_env_float("CONSENTRY_CONSOLE_SESSION_HOURS", d.console_session_hours),
            victim_hub_bank=os.environ.get("CONSENTRY_VICTIM_HUB_BANK", d.victim_hub_bank).strip(),
            victim_max_hashes=_env_int("CONSENTRY_VICTIM_MAX_HASHES", d.victim_max_hashes),
            victim_submissions_per_hour=_env_float("CONSENTRY_VICTIM_SUBMISSIONS_PER_HOUR",
                                                   d.victim_submissions_per_hour),
            victim_lookups_per_minute=_env_float("CONSENTRY_VICTIM_LOOKUPS_PER_MINUTE", d.victim_lookups_per_minute),
            victim_pin_attempts=_env_int("CONSENTRY_VICTIM_PIN_ATTEMPTS", d.victim_pin_attempts),
            victim_minor_text=os.environ.get("CONSENTRY_VICTIM_MINOR_TEXT") or d.victim_minor_text,
            victim_minor_links=os.environ.get("CONSENTRY_VICTIM_MINOR_LINKS") or d.victim_minor_links,
            exchange_pull_seconds=_env_float("CONSENTRY_EXCHANGE_PULL_SECONDS", d.exchange_pull_seconds),
            secret_key=os.environ.get("CONSENTRY_SECRET_KEY") or None,
            trusted_proxies=_env_proxies("CONSENTRY_TRUSTED_PROXIES"),
            signal_types=_env_list("CONSENTRY_SIGNAL_TYPES"),
            url_allowlist=_env_list("CONSENTRY_URL_ALLOWLIST"),
            url_fetch_timeout=_env_float("CONSENTRY_URL_FETCH_TIMEOUT", d.url_fetch_timeout),
            url_fetch_max_redirects=_env_int("CONSENTRY_URL_FETCH_MAX_REDIRECTS", d.url_fetch_max_redirects),
        )

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    @property
    def effective_database_url(self) -> str:
        """``DATABASE_URL`` if set, else the embedded SQLite file under ``home``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'consentry.db').resolve()}"


_settings: Settings | None = None


def get_settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def set_settings(settings: Settings | None) -> None:
    """Replace the process settings (tests, ``consentry serve`` options)."""
    global _settings
    _settings = settings
