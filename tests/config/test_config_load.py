"""Loading the configuration: every kind of bad file gives one message naming the key."""

from __future__ import annotations

import dataclasses
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dibble
from dibble.config import (
    Config,
    ConfigError,
    ServerSection,
    dump_toml,
    import_object,
    load_config,
    parse_config,
)

SERVICES = """
import dibble


class Hello(dibble.Page):
    def get_html(self) -> str:
        return "hello"


class Cal(dibble.Plugin):
    def onHome(self) -> str:
        return "cal"


class NeedsArgs(dibble.Plugin):
    def __init__(self, name: str) -> None:
        self.name = name


NOT_A_SERVICE = 42
"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    """A folder with a services module; the module is forgotten afterwards."""
    (tmp_path / "cfg_services.py").write_text(SERVICES)
    (tmp_path / "cfg_broken.py").write_text("raise RuntimeError('cannot start')\n")
    yield tmp_path
    for name in ("cfg_services", "cfg_broken"):
        sys.modules.pop(name, None)
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def load(site: Path, text: str, overrides: dict[str, Any] | None = None) -> Config:
    path = site / "site.toml"
    path.write_text(text)
    return load_config(path, overrides)


def load_and_build(site: Path, text: str) -> None:
    dibble.HTTPServer.from_config(load(site, text), dibble.Context())


def error(site: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_and_build(site, text)
    return str(info.value)


def test_defaults() -> None:
    config = load_config()
    assert config == Config()
    assert config.server.port == 8888
    assert config.given == frozenset()


def test_a_full_file(site: Path) -> None:
    config = load(
        site,
        """
        [server]
        name = "obs"
        port = 8080
        keep_alive_timeout = 3      # an integer for a float setting is fine
        default_service = "hello"

        [services]
        hello = "cfg_services:Hello"
        cal = "cfg_services:Cal"

        [vhosts.hosts."docs.example.org"]
        default_service = "cal"
        services = ["cal"]

        [access]
        allow = ["127.0.0.0/8", "::1", "2001:db8::/32"]

        [cookies]
        attrs = ["project"]
        """,
    )
    assert config.server.name == "obs"
    assert config.server.keep_alive_timeout == 3.0
    assert isinstance(config.server.keep_alive_timeout, float)
    assert config.services == {"hello": "cfg_services:Hello", "cal": "cfg_services:Cal"}
    assert config.vhosts.hosts["docs.example.org"].services == ("cal",)
    assert config.access.allow == ("127.0.0.0/8", "::1", "2001:db8::/32")
    assert config.cookies.attrs == ("project",)
    assert {"server.port", "server.name", "services", "vhosts.hosts"} <= config.given
    assert "server.host" not in config.given


def test_the_command_line_wins(site: Path) -> None:
    config = load(
        site,
        '[server]\nport = 8080\nhost = "0.0.0.0"\n',
        {"server.port": 9000, "cookies.domain": "example.org"},
    )
    assert config.server.port == 9000
    assert config.server.host == "0.0.0.0"
    assert config.cookies.domain == "example.org"
    assert {"server.port", "server.host", "cookies.domain"} <= config.given


def test_relative_paths_are_relative_to_the_file(site: Path) -> None:
    (site / "templates").mkdir()
    config = load(
        site,
        '[paths]\ntemplates = "templates"\ndata_dir = "data"\n[logging]\ndirectory = "logs"\n',
    )
    assert config.paths.root == str(site)
    assert config.paths.templates == str(site / "templates")
    assert config.paths.data_dir == str(site / "data")
    assert config.logging.directory == str(site / "logs")
    assert config.maintenance.file == str(site / "maintenance")


def test_root_can_be_elsewhere(site: Path) -> None:
    config = load(site, '[paths]\nroot = "srv"\n[maintenance]\nfile = "down.txt"\n')
    assert config.paths.root == str(site / "srv")
    assert config.maintenance.file == str(site / "srv" / "down.txt")


def test_effective_configuration_round_trips(site: Path) -> None:
    config = load(
        site,
        """
        [server]
        name = "obs"
        [services]
        "hello.page" = "cfg_services:Hello"
        [vhosts]
        unknown_host = "404"
        [vhosts.hosts."docs.example.org"]
        services = ["hello.page"]
        aliases = ["www.docs.example.org"]
        [maintenance]
        exempt = ["/static/", "/login"]
        """,
    )
    text = dump_toml(config)
    assert '"hello.page" = "cfg_services:Hello"' in text
    assert '[vhosts.hosts."docs.example.org"]' in text
    assert parse_config(tomllib.loads(text)) == config


def test_every_section_prints_every_setting() -> None:
    text = dump_toml(Config())
    parsed = tomllib.loads(text)
    for field in dataclasses.fields(Config()):
        if field.metadata.get("internal"):
            continue
        section = getattr(Config(), field.name)
        assert field.name in parsed
        if dataclasses.is_dataclass(section):
            for setting in dataclasses.fields(section):
                if setting.name != "hosts":
                    assert setting.name in parsed[field.name], (field.name, setting.name)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Syntax
        ("[server\nport = 1", "site.toml: not valid TOML: "),
        ("[server]\nport = ", "site.toml: not valid TOML: "),
        ("[server]\nport = 1\nport = 2", "site.toml: not valid TOML: "),
        # Unknown names
        ("[serverz]\nport = 1", "[serverz]: unknown section (known: server, limits, "),
        ("[server]\ncolour = 1", "[server] colour: unknown setting (known: name, host, "),
        ("port = 1", "port: settings belong in a section (such as [server])"),
        ('[vhosts.hosts."a.org"]\nx = 1', '[vhosts.hosts."a.org"] x: unknown setting'),
        # Wrong types
        ('[server]\nport = "abc"', '[server] port: expected an integer, got "abc"'),
        ("[server]\nport = 80.5", "[server] port: expected an integer, got 80.5"),
        ("[server]\nport = true", "[server] port: expected an integer, got true"),
        ('[server]\ntest_mode = "yes"', '[server] test_mode: expected true or false, got "yes"'),
        ("[server]\ntest_mode = 1", "[server] test_mode: expected true or false, got 1"),
        ('[server]\nbody_timeout = "30"', '[server] body_timeout: expected a number, got "30"'),
        ("[server]\nbody_timeout = nan", "[server] body_timeout: expected a finite number"),
        ("[server]\nhost = 127", "[server] host: expected a string, got 127"),
        ('[access]\nallow = "10.0.0.0/8"', '[access] allow: expected an array, got "10.0.0.0/8"'),
        ("[access]\nallow = [10]", "[access] allow[0]: expected a string, got 10"),
        ("server = 1", "[server]: expected a table, got 1"),
        ("services = []", "[services]: expected a table, got an array"),
        ("[services]\nx = 1", "[services] x: expected a string, got 1"),
        ('[logging]\nlevel = "debug"', '[logging] level: expected one of "DEBUG", "INFO", '),
        ('[vhosts]\nunknown_host = "drop"', '[vhosts] unknown_host: expected one of "default"'),
        ("[vhosts]\nhosts = 1", "[vhosts] hosts: expected a table, got 1"),
        # Values out of range or malformed
        ("[server]\nport = 70000", "[server] port: must be between 0 and 65535, got 70000"),
        ("[server]\nkeep_alive_timeout = 0", "[server] keep_alive_timeout: must be more than 0"),
        ("[server]\nmax_connections = 0", "[server] max_connections: must be at least 1, got 0"),
        ("[limits]\nmax_body_size = -1", "[limits] max_body_size: must not be negative, got -1"),
        ('[server]\nname = "my site"', '[server] name: "my site" is not a valid server name'),
        ('[server]\nsecret_key = "short"', "[server] secret_key: must be at least 32 characters"),
        ('[server]\ndefault_service = "a/b"', '[server] default_service: "a/b" is not a valid'),
        ('[access]\nallow = ["010.0.0.1"]', '[access] allow: "010.0.0.1" is not a valid IPv4'),
        ('[access]\ndeny = ["10.0.0.1/8"]', '[access] deny: "10.0.0.1/8" is not a valid network'),
        ('[proxies]\ntrusted = ["proxy.local"]', '[proxies] trusted: "proxy.local" is not a val'),
        ('[proxies]\nheader = "X-Real-IP"', '[proxies] header: expected one of "X-Forwarded-For"'),
        ('[maintenance]\nexempt = ["static"]', '[maintenance] exempt: "static" must start with'),
        ('[cookies]\ndomain = "Example.ORG"', '[cookies] domain: "Example.ORG" is not a domain'),
        ('[cookies]\nsame_site = "None"', '[cookies]: same_site = "None" needs secure = true'),
        ('[cookies]\nattrs = ["a b"]', '[cookies] attrs: "a b" is not a valid cookie'),
        ('[services]\n"a b" = "x:Y"', '[services] "a b": "a b" is not a valid URL name'),
        ('[vhosts.hosts."A.org"]', '[vhosts] hosts: "A.org" is not a host name in lower case'),
        ('[vhosts.hosts."a.org:80"]', '[vhosts] hosts: "a.org:80" is not a host name'),
        (
            '[vhosts.hosts."a.org"]\naliases = ["b.org"]\n[vhosts.hosts."b.org"]',
            '[vhosts] hosts: host "b.org" is listed twice',
        ),
        (
            '[vhosts.hosts."a.org"]\ndefault_service = "x"\nservices = ["y"]',
            '[vhosts.hosts."a.org"]: default_service "x" is not one of its services',
        ),
        # Import paths
        ('[services]\nx = "no_such_module_xyz:Page"', "[services] x: cannot import "),
        ('[services]\nx = "cfg_services:Nope"', '[services] x: cannot import "cfg_services:Nope"'),
        ('[services]\nx = "cfg_services"', '[services] x: expected "module:attr", got'),
        ('[services]\nx = "cfg services:Hello"', '[services] x: expected "module:attr"'),
        ('[services]\nx = "cfg_broken:Page"', "RuntimeError: cannot start"),
        # Checked when the server is built
        ('[services]\nx = "cfg_services:NOT_A_SERVICE"', "[services] x: 42 is not a dibble.Page"),
        ('[services]\nx = "cfg_services:NeedsArgs"', "[services] x: cannot create NeedsArgs()"),
        ('[server]\ndefault_service = "nothing"', "[server] default_service: no service named"),
        (
            '[services]\nhello = "cfg_services:Hello"\n[vhosts.hosts."a.org"]\nservices = ["x"]',
            '[vhosts.hosts."a.org"]: no service named "x"',
        ),
        ('[paths]\ntemplates = "nowhere"', "[paths] templates: no such folder: "),
    ],
)
def test_bad_configuration(site: Path, text: str, message: str) -> None:
    text = error(site, text)
    assert message in text
    shown = str(site / "site.toml")
    assert text.endswith(f"(in {shown})") or text.startswith(f"{shown}: ")


def test_one_message_for_each_problem(site: Path) -> None:
    # Only the first problem is reported: one clear line, not a cascade.
    text = error(site, '[server]\nport = "x"\nhost = 1\n')
    assert text.count("expected") == 1


def test_unreadable_data_folder(site: Path) -> None:
    (site / "data").write_text("a file, not a folder")
    text = error(site, '[paths]\ndata_dir = "data"\n')
    assert text.startswith("[paths] data_dir: cannot keep the secret key: ")
    assert text.endswith(f"(in {site / 'site.toml'})")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nothing\.toml: cannot read it: No such file"):
        load_config(tmp_path / "nothing.toml")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[server]\nname = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"latin1\.toml: not UTF-8 text"):
        load_config(path)


def test_import_object() -> None:
    assert import_object("dibble:Page") is dibble.Page
    assert import_object("dibble.pages:Info") is dibble.Info
    assert import_object("dibble.config:ServerSection") is ServerSection
    with pytest.raises(ImportError, match='"dibble" has no attribute "Nothing"'):
        import_object("dibble:Nothing")
