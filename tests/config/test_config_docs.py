"""docs/configuration.md documents every setting, with its default."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from dibble.config import Config, VirtualHostSection
from dibble.config._schema import _toml_value, section_fields

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def sections() -> dict[str, str]:
    """The text under each ``## `[name]` `` (or ``### ``) heading, by name."""
    text = DOC.read_text()
    parts = re.split(r"^#{2,3} `\[([^\]]+)\]`$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_every_setting_is_documented_with_its_default() -> None:
    documented = sections()
    config = Config()
    missing = []
    for field in section_fields(Config):
        section = getattr(config, field.name)
        if not dataclasses.is_dataclass(section):
            assert f"`[{field.name}]`" in DOC.read_text()
            continue
        text = documented.get(field.name, "")
        for setting in dataclasses.fields(section):
            value = getattr(section, setting.name)
            default = "{}" if isinstance(value, dict) else _toml_value(value)
            row = f"| `{setting.name}` | `{default}` |"
            if row not in text:
                missing.append(f"[{field.name}] {setting.name} = {default}")
    host = documented.get('vhosts.hosts."name"', "")
    for setting in dataclasses.fields(VirtualHostSection):
        default = _toml_value(getattr(VirtualHostSection(), setting.name))
        if f"| `{setting.name}` | `{default}` |" not in host:
            missing.append(f'[vhosts.hosts."name"] {setting.name} = {default}')
    assert not missing, "undocumented settings: " + ", ".join(missing)


def test_no_documented_setting_is_unknown() -> None:
    config = Config()
    for name, text in sections().items():
        if name == 'vhosts.hosts."name"':
            continue
        section = getattr(config, name)
        if not dataclasses.is_dataclass(section):
            continue
        known = {f.name for f in dataclasses.fields(section)}
        for row in re.findall(r"^\| `(\w+)` \|", text, flags=re.M):
            assert row in known, f"[{name}] {row} is documented but does not exist"
