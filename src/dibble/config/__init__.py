"""dibble's configuration: one TOML file, merged with the command line.

::

    from dibble.config import load_config

    config = load_config("site.toml", {"server.port": 8080})
    config.server.port        # 8080: the command line wins
    config.services           # {"info": "dibble.pages:Info", ...}

Every section is a frozen dataclass (``ServerSection``, ``AccessSection``,
...) with typed, documented defaults; see ``docs/configuration.md``.  A
problem raises :class:`ConfigError` naming the setting.
"""

from ._load import import_object, load_config, parse_config
from ._schema import ConfigError, describe_value, dump_toml, setting
from ._sections import (
    AccessSection,
    AdminSection,
    AuthSection,
    Config,
    CookiesSection,
    DatabaseSection,
    HousekeepingSection,
    LimitsSection,
    LoggingSection,
    MaintenanceSection,
    PathsSection,
    ProxiesSection,
    ServerSection,
    SessionsSection,
    StatisticsSection,
    VirtualHostSection,
    VirtualHostsSection,
)

__all__ = [
    "AccessSection",
    "AdminSection",
    "AuthSection",
    "Config",
    "ConfigError",
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
    "describe_value",
    "dump_toml",
    "import_object",
    "load_config",
    "parse_config",
    "setting",
]
