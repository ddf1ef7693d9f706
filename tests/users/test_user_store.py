"""The user store: users, projects, privileges, password checks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dibble.users import (
    ADMIN,
    MAX_PRIVILEGE,
    READ,
    WRITE,
    ScryptParams,
    User,
    UserError,
    UserStore,
)

FAST = ScryptParams(ln=4)


@pytest.fixture
def users(tmp_path: Path) -> Iterator[UserStore]:
    store = UserStore(tmp_path / "dibble.sqlite3", params=FAST)
    yield store
    store.close()


def test_add_get_verify(users: UserStore) -> None:
    user = users.add("alice", "secret", projects={"lofar": WRITE})
    assert user == users.get("alice")
    assert user.projects == {"lofar": WRITE}
    assert not user.admin
    assert user.created > 0
    assert users.verify("alice", "secret") == user
    assert users.verify("alice", "wrong") is None
    assert users.verify("nobody", "secret") is None
    assert users.verify("bad:name", "secret") is None


def test_names_are_checked(users: UserStore) -> None:
    for bad in ("", "a:b", " alice", "x" * 65, "tab\there"):
        with pytest.raises(UserError):
            users.add(bad, "pw")
    users.add("Zoë", "pw")
    assert users.get("Zoe\u0308") is None  # stored NFC; lookups by the stored name
    assert users.get("Zoë") is not None


def test_a_name_is_taken_once(users: UserStore) -> None:
    users.add("bob", "pw")
    with pytest.raises(UserError, match="already exists"):
        users.add("bob", "other")


def test_passwords_change_and_weak_hashes_are_replaced(tmp_path: Path) -> None:
    weak = UserStore(tmp_path / "u.sqlite3", params=ScryptParams(ln=2))
    weak.add("carol", "one")
    weak.close()
    strong = UserStore(tmp_path / "u.sqlite3", params=ScryptParams(ln=4))
    assert (strong.password_hash("carol") or "").startswith("$scrypt$ln=2,")
    assert strong.verify("carol", "one") is not None
    hashed = strong.password_hash("carol")
    assert hashed is not None and hashed.startswith("$scrypt$ln=4,")
    strong.set_password("carol", "two")
    assert strong.verify("carol", "one") is None
    assert strong.verify("carol", "two") is not None
    with pytest.raises(UserError):
        strong.set_password("nobody", "x")
    strong.close()


def test_privileges(users: UserStore) -> None:
    users.add("dan", "pw", projects={"a": READ})
    users.grant("dan", "b", WRITE)
    dan = users.get("dan")
    assert dan is not None
    assert dan.privilege("a") == READ
    assert dan.privilege("b") == WRITE
    assert dan.privilege("c") == 0
    assert dan.allows(READ, "a") and not dan.allows(WRITE, "a")
    assert dan.allows(WRITE) and not dan.allows(ADMIN)
    assert dan.allows(0)
    users.revoke("dan", "b")
    after = users.get("dan")
    assert after is not None and after.projects == {"a": READ}
    assert after.fingerprint != dan.fingerprint
    with pytest.raises(UserError):
        users.grant("dan", "bad project name", READ)
    with pytest.raises(UserError):
        users.grant("dan", "a", MAX_PRIVILEGE + 1)
    with pytest.raises(UserError):
        users.grant("nobody", "a", READ)
    assert set(users.projects()) == {"a", "b"}


def test_admins_have_every_privilege(users: UserStore) -> None:
    users.add("root", "pw", admin=True)
    root = users.get("root")
    assert root is not None
    assert root.allows(MAX_PRIVILEGE, "anything")
    users.set_admin("root", False)
    plain = users.get("root")
    assert plain is not None and not plain.admin
    assert plain.fingerprint != root.fingerprint


def test_list_and_remove(users: UserStore) -> None:
    users.add("b", "pw", projects={"p": 2})
    users.add("a", "pw")
    assert [u.name for u in users.users()] == ["a", "b"]
    assert users.users()[1].projects == {"p": 2}
    users.remove("b")
    assert [u.name for u in users.users()] == ["a"]
    with pytest.raises(UserError):
        users.remove("b")


def test_a_bare_user() -> None:
    user = User("x")
    assert user.privilege("p") == 0
    assert not user.allows(1)
