"""The sections of dibble's configuration file and their defaults.

Each class is one ``[section]`` of the TOML file; ``docs/configuration.md``
documents every setting (a test checks that it does).  To add a section:
declare a frozen dataclass here (types, defaults, checks), add it to
``Config``, and document it.  Nothing else needs to change: loading,
validation, error messages and ``dibble check-config`` follow from the
declaration.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Final, Literal

from ..ops import is_host_name, parse_network
from ._schema import setting

__all__ = [
    "AccessSection",
    "AdminSection",
    "AuthSection",
    "Config",
    "CookiesSection",
    "DatabaseSection",
    "HousekeepingSection",
    "LimitsSection",
    "LoggingSection",
    "MaintenanceSection",
    "PathsSection",
    "ProxiesSection",
    "ServerSection",
    "SessionsSection",
    "StatisticsSection",
    "VirtualHostSection",
    "VirtualHostsSection",
]

# A URL name is one path segment; these characters never need encoding.
_URL_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SERVER_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_COOKIE_NAME: Final = re.compile(r"[A-Za-z0-9_-]+")
_DOMAIN: Final = re.compile(r"\.?[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")


def _q(text: object) -> str:
    """``text`` in double quotes, as configuration messages quote values."""
    return json.dumps(str(text), ensure_ascii=False)


def _positive(value: float) -> None:
    if value <= 0:
        raise ValueError(f"must be more than 0, got {value!r}")


def _at_least_one(value: int) -> None:
    if value < 1:
        raise ValueError(f"must be at least 1, got {value!r}")


def _not_negative(value: float) -> None:
    if value < 0:
        raise ValueError(f"must not be negative, got {value!r}")


def _port(value: int) -> None:
    if not 0 <= value <= 65535:
        raise ValueError(f"must be between 0 and 65535, got {value!r}")


def url_name(value: str) -> None:
    """Check a service name: one path segment of letters, digits, ``.``, ``_``, ``-``."""
    if not _URL_NAME.fullmatch(value):
        raise ValueError(
            f"{_q(value)} is not a valid URL name (letters, digits, '.', '_' and '-', "
            "starting with a letter or digit)"
        )


def _optional_url_name(value: str) -> None:
    if value:
        url_name(value)


def _url_names(values: tuple[str, ...]) -> None:
    for value in values:
        url_name(value)


def _server_name(value: str) -> None:
    if not _SERVER_NAME.fullmatch(value):
        raise ValueError(
            f"{_q(value)} is not a valid server name (letters, digits, '_' and '-'); "
            "it prefixes cookie names"
        )


def _secret(value: str) -> None:
    if value and len(value.encode("utf-8")) < 32:
        raise ValueError("must be at least 32 characters (or empty to use the data directory)")


def _networks(values: tuple[str, ...]) -> None:
    for value in values:
        parse_network(value)


def _path_prefixes(values: tuple[str, ...]) -> None:
    for value in values:
        if not value.startswith("/"):
            raise ValueError(f"{_q(value)} must start with '/'")


def _host_names(values: tuple[str, ...]) -> None:
    for value in values:
        if not is_host_name(value):
            raise ValueError(
                f"{_q(value)} is not a host name in lower case without a port "
                "(use the punycode form of international names)"
            )


def _cookie_names(values: tuple[str, ...]) -> None:
    for value in values:
        if not _COOKIE_NAME.fullmatch(value):
            raise ValueError(f"{_q(value)} is not a valid cookie attribute name")


def _domain(value: str) -> None:
    if value and not _DOMAIN.fullmatch(value):
        raise ValueError(f"{_q(value)} is not a domain name in lower case")


@dataclass(frozen=True, slots=True)
class ServerSection:
    """``[server]``: the listening address, the service's name and its timeouts."""

    name: str = setting("dibble", check=_server_name)
    host: str = "127.0.0.1"
    port: int = setting(8888, check=_port)
    default_service: str = setting("", check=_optional_url_name)
    test_mode: bool = False
    secret_key: str = setting("", check=_secret)
    keep_alive_timeout: float = setting(5.0, check=_positive)
    header_timeout: float = setting(10.0, check=_positive)
    body_timeout: float = setting(30.0, check=_positive)
    graceful_timeout: float = setting(10.0, check=_positive)
    max_connections: int = setting(10_000, check=_at_least_one)
    max_pipeline: int = setting(32, check=_at_least_one)
    backlog: int = setting(1024, check=_at_least_one)
    blocking_threads: int = setting(32, check=_at_least_one)
    slow_callback_threshold: float = setting(0.25, check=_positive)


@dataclass(frozen=True, slots=True)
class LimitsSection:
    """``[limits]``: how much of a request the server holds (``dibble.Limits``)."""

    max_request_line: int = setting(8 * 1024, check=_at_least_one)
    max_header_bytes: int = setting(64 * 1024, check=_at_least_one)
    max_header_count: int = setting(100, check=_at_least_one)
    max_body_size: int = setting(16 * 1024 * 1024, check=_not_negative)


@dataclass(frozen=True, slots=True)
class PathsSection:
    """``[paths]``: where the service keeps things (relative to the config file)."""

    root: str = ""
    templates: str = ""
    data_dir: str = ""


@dataclass(frozen=True, slots=True)
class VirtualHostSection:
    """One ``[vhosts.hosts."name"]`` table."""

    default_service: str = setting("", check=_optional_url_name)
    services: tuple[str, ...] = setting((), check=_url_names)
    aliases: tuple[str, ...] = setting((), check=_host_names)

    def __post_init__(self) -> None:
        if self.services and self.default_service and self.default_service not in self.services:
            raise ValueError(
                f"default_service {_q(self.default_service)} is not one of its services"
            )


def _vhost_names(hosts: dict[str, VirtualHostSection]) -> None:
    seen: set[str] = set()
    for name, host in hosts.items():
        _host_names((name,))
        for alias in (name, *host.aliases):
            if alias in seen:
                raise ValueError(f"host {_q(alias)} is listed twice")
            seen.add(alias)


@dataclass(frozen=True, slots=True)
class VirtualHostsSection:
    """``[vhosts]``: the Host header chooses services."""

    unknown_host: Literal["default", "404"] = "default"
    hosts: dict[str, VirtualHostSection] = field(
        default_factory=dict, metadata={"check": _vhost_names}
    )


@dataclass(frozen=True, slots=True)
class AccessSection:
    """``[access]``: which client networks may connect."""

    allow: tuple[str, ...] = setting((), check=_networks)
    deny: tuple[str, ...] = setting((), check=_networks)


@dataclass(frozen=True, slots=True)
class ProxiesSection:
    """``[proxies]``: reverse proxies whose forwarded client address is believed."""

    trusted: tuple[str, ...] = setting((), check=_networks)
    header: Literal["X-Forwarded-For", "Forwarded"] = "X-Forwarded-For"


@dataclass(frozen=True, slots=True)
class MaintenanceSection:
    """``[maintenance]``: the maintenance file and what it exempts."""

    enabled: bool = True
    file: str = "maintenance"
    retry_after: int = setting(300, check=_not_negative)
    exempt: tuple[str, ...] = setting((), check=_path_prefixes)
    check_interval: float = setting(1.0, check=_positive)


@dataclass(frozen=True, slots=True)
class CookiesSection:
    """``[cookies]``: attributes of the cookies pages set."""

    domain: str = setting("", check=_domain)
    lifetime: float = setting(30.0, check=_positive)
    attrs: tuple[str, ...] = setting((), check=_cookie_names)
    secure: bool = False
    same_site: Literal["Lax", "Strict", "None"] = "Lax"

    def __post_init__(self) -> None:
        if self.same_site == "None" and not self.secure:
            raise ValueError('same_site = "None" needs secure = true (browsers drop it otherwise)')


@dataclass(frozen=True, slots=True)
class LoggingSection:
    """``[logging]``: where the access, error and performance logs go."""

    directory: str = ""
    access_log: bool = True
    performance_log: bool = False
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    rotation: Literal["size", "daily", "external"] = "size"
    max_bytes: int = setting(10 * 1024 * 1024, check=_at_least_one)
    backup_count: int = setting(10, check=_not_negative)
    anonymize_ips: bool = False
    sql_log: bool = False


# --- sessions, logins and the database (dibble.sessions, dibble.auth, dibble.users) ------

_STORE_SCHEMES: Final = ("sqlite", "redis", "rediss", "unix")


def _session_store(value: str) -> None:
    scheme, sep, _ = value.partition("://")
    if sep and scheme not in _STORE_SCHEMES:
        raise ValueError(
            f'{_q(value)} is not a session store: "memory", a file or sqlite:///file, '
            "or redis://host:port/db"
        )


def _lifetimes(values: dict[str, float]) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"the lifetime of {_q(name)} must be more than 0, got {value!r}")


def _cookie_token(value: str) -> None:
    if not _COOKIE_NAME.fullmatch(value):
        raise ValueError(f"{_q(value)} is not a valid cookie name (letters, digits, '_', '-')")


def _sso_keys(values: tuple[str, ...]) -> None:
    for value in values:
        if len(value.encode("utf-8")) < 32:
            raise ValueError("every key must be at least 32 characters")


def _url_path(value: str) -> None:
    if not value.startswith("/"):
        raise ValueError(f"{_q(value)} must be a path starting with '/'")


def _database_url(value: str) -> None:
    scheme, sep, _ = value.partition("://")
    if sep and scheme != "sqlite":
        raise ValueError(f"only sqlite:// databases are supported so far, not {scheme}://")


@dataclass(frozen=True, slots=True)
class SessionsSection:
    """``[sessions]``: where server-side sessions are kept, how long, and their cookie."""

    store: str = setting("", check=_session_store)
    lifetime: float = setting(43200.0, check=_positive)
    lifetimes: dict[str, float] = field(default_factory=dict, metadata={"check": _lifetimes})
    cookie_name: str = setting("session", check=_cookie_token)
    cookie_domain: str = setting("", check=_domain)
    max_size: int = setting(65536, check=_at_least_one)
    cleanup_interval: float = setting(300.0, check=_positive)
    timeout: float = setting(2.0, check=_positive)
    redis_cache: bool = True


@dataclass(frozen=True, slots=True)
class AuthSection:
    """``[auth]``: the login pages, failed-login limits and single sign-on."""

    login_url: str = setting("/login", check=_url_path)
    logout_url: str = setting("/logout", check=_url_path)
    after_login: str = setting("/", check=_url_path)
    max_failures: int = setting(5, check=_at_least_one)
    failure_window: float = setting(300.0, check=_positive)
    sso_keys: tuple[str, ...] = setting((), check=_sso_keys)
    sso_domain: str = setting("", check=_domain)
    sso_cookie: str = setting("dibble_sso", check=_cookie_token)
    sso_lifetime: float = setting(28800.0, check=_positive)


@dataclass(frozen=True, slots=True)
class DatabaseSection:
    """``[database]``: the database users, projects and privileges are kept in."""

    url: str = setting("", check=_database_url)


# --- the housekeeping timer and the admin area (dibble.housekeeping, dibble.admin) -------

_MAIL_ADDRESS: Final = re.compile(r"[^\s@,;<>\"()\[\]\\]+@[^\s@,;<>\"()\[\]\\]+")
_IMPORT_PATH: Final = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def _mail_address(value: str) -> None:
    if value and not _MAIL_ADDRESS.fullmatch(value):
        raise ValueError(f"{_q(value)} is not a mail address (name@host)")


def _mail_addresses(values: tuple[str, ...]) -> None:
    for value in values:
        if not value:
            raise ValueError("an empty mail address")
        _mail_address(value)


def _import_path(value: str) -> None:
    if value and not _IMPORT_PATH.fullmatch(value):
        raise ValueError(f'expected "module:Class", got {_q(value)}')


def _lock_store(value: str) -> None:
    scheme, sep, _ = value.partition("://")
    if sep and scheme not in _STORE_SCHEMES:
        raise ValueError(
            f'{_q(value)} is not a lock store: "memory", a file or sqlite:///file, '
            "or redis://host:port/db"
        )


def _admin_prefix(value: str) -> None:
    segments = value.split("/")
    if not value.startswith("/") or value == "/" or value.endswith("/"):
        raise ValueError(f"{_q(value)} must be a path such as \"/admin\" (no trailing '/')")
    for segment in segments[1:]:
        url_name(segment)


def _optional_project(value: str) -> None:
    if value and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value):
        raise ValueError(f"{_q(value)} is not a project name (letters, digits, '.', '_', '-')")


@dataclass(frozen=True, slots=True)
class HousekeepingSection:
    """``[housekeeping]``: the periodic timer, its lock, log cleanup and the error mail."""

    enabled: bool = True
    interval: float = setting(300.0, check=_positive)
    lock: str = setting("", check=_lock_store)
    log_short_age: float = setting(14.0, check=_not_negative)
    log_long_age: float = setting(90.0, check=_not_negative)
    mail_to: tuple[str, ...] = setting((), check=_mail_addresses)
    mail_from: str = setting("", check=_mail_address)
    mail_interval: float = setting(86400.0, check=_positive)
    smtp_host: str = "localhost"
    smtp_port: int = setting(25, check=_port)
    smtp_starttls: bool = False
    smtp_user: str = ""
    smtp_password_file: str = ""
    smtp_timeout: float = setting(30.0, check=_positive)
    cleanup_class: str = setting("", check=_import_path)

    def __post_init__(self) -> None:
        if self.smtp_user and not self.smtp_password_file:
            raise ValueError("smtp_user needs smtp_password_file (the file with its password)")


@dataclass(frozen=True, slots=True)
class AdminSection:
    """``[admin]``: the admin area: where it is mounted and who may use it."""

    enabled: bool = False
    prefix: str = setting("/admin", check=_admin_prefix)
    networks: tuple[str, ...] = setting((), check=_networks)
    network_required: bool = False
    project: str = setting("", check=_optional_project)

    def __post_init__(self) -> None:
        if self.network_required and not self.networks:
            raise ValueError("network_required = true needs networks")


# --- statistics, the request log and bots (dibble.stats) ---------------------------------


def _statistics_store(value: str) -> None:
    scheme, sep, _ = value.partition("://")
    if sep and scheme not in _STORE_SCHEMES:
        raise ValueError(
            f'{_q(value)} is not a statistics store: "memory", a file or sqlite:///file, '
            "or redis://host:port/db"
        )


def _patterns(values: tuple[str, ...]) -> None:
    for value in values:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{_q(value)} is not a regular expression: {exc}") from None


def _words(values: tuple[str, ...]) -> None:
    for value in values:
        if not value.strip():
            raise ValueError("an empty name")


@dataclass(frozen=True, slots=True)
class StatisticsSection:
    """``[statistics]``: request counts, the request log table and bot detection."""

    enabled: bool = False
    store: str = setting("", check=_statistics_store)
    flush_interval: float = setting(300.0, check=_positive)
    max_counters: int = setting(10_000, check=_at_least_one)
    request_log: bool = False
    request_log_bots: bool = False
    request_log_buffer: int = setting(20_000, check=_at_least_one)
    request_log_interval: float = setting(0.1, check=_positive)
    request_log_days: float = setting(90.0, check=_not_negative)
    masked_args: tuple[str, ...] = setting((), check=_words)
    bot_agents: tuple[str, ...] = setting((), check=_patterns)
    reverse_dns: bool = False
    bot_domains: tuple[str, ...] = setting((), check=_host_names)
    reverse_dns_ttl: float = setting(3600.0, check=_positive)


def _services(services: dict[str, str]) -> None:
    for name in services:
        url_name(name)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration: one attribute per section.

    Build one with :func:`dibble.config.load_config` (a TOML file) or
    :func:`dibble.config.parse_config` (a dict); ``Config()`` is every
    default.  ``services`` maps URL names to ``"module:attr"`` import paths.
    """

    server: ServerSection = field(default_factory=ServerSection)
    limits: LimitsSection = field(default_factory=LimitsSection)
    paths: PathsSection = field(default_factory=PathsSection)
    services: dict[str, str] = field(default_factory=dict, metadata={"check": _services})
    vhosts: VirtualHostsSection = field(default_factory=VirtualHostsSection)
    access: AccessSection = field(default_factory=AccessSection)
    proxies: ProxiesSection = field(default_factory=ProxiesSection)
    maintenance: MaintenanceSection = field(default_factory=MaintenanceSection)
    cookies: CookiesSection = field(default_factory=CookiesSection)
    logging: LoggingSection = field(default_factory=LoggingSection)
    sessions: SessionsSection = field(default_factory=SessionsSection)
    auth: AuthSection = field(default_factory=AuthSection)
    database: DatabaseSection = field(default_factory=DatabaseSection)
    housekeeping: HousekeepingSection = field(default_factory=HousekeepingSection)
    admin: AdminSection = field(default_factory=AdminSection)
    statistics: StatisticsSection = field(default_factory=StatisticsSection)
    #: Dotted names of the settings a file or the command line gave
    #: explicitly (``"server.port"``); not itself a setting.
    given: frozenset[str] = field(
        default=frozenset(), compare=False, repr=False, metadata={"internal": True}
    )
    #: The file it was read from ("" if none), for messages.
    source: str = field(default="", compare=False, repr=False, metadata={"internal": True})
