"""scrypt password hashes: the PHC format, parameters per hash, constant-time checks."""

from __future__ import annotations

import pytest

from dibble.users import ScryptParams, hash_password, needs_rehash, verify_password
from dibble.users._hashing import parse_hash

FAST = ScryptParams(ln=4, r=8, p=1)


def test_a_hash_records_its_parameters_and_verifies() -> None:
    stored = hash_password("correct horse", FAST)
    assert stored.startswith("$scrypt$ln=4,r=8,p=1$")
    parsed = parse_hash(stored)
    assert parsed is not None
    params, salt, digest = parsed
    assert params == FAST
    assert len(salt) == 16 and len(digest) == 32
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsE", stored)
    assert not verify_password("", stored)


def test_salts_differ() -> None:
    assert hash_password("same", FAST) != hash_password("same", FAST)


def test_the_default_parameters_are_strong() -> None:
    stored = hash_password("pw")
    assert stored.startswith("$scrypt$ln=15,r=8,p=1$")
    assert verify_password("pw", stored)


def test_unicode_passwords_are_normalised() -> None:
    composed = "caf\u00e9"
    decomposed = "cafe\u0301"
    assert verify_password(decomposed, hash_password(composed, FAST))


def test_old_parameters_ask_for_a_rehash() -> None:
    weak = hash_password("pw", FAST)
    assert needs_rehash(weak, ScryptParams(ln=5))
    assert needs_rehash(weak, ScryptParams(ln=4, r=16))
    assert not needs_rehash(weak, FAST)
    assert needs_rehash("not a hash", FAST)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain text",
        "$scrypt$ln=4,r=8,p=1$c2FsdA$",
        "$scrypt$ln=40,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$scrypt$ln=4,r=800,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2$ln=4,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_what_is_not_a_sane_hash_never_verifies(stored: str) -> None:
    assert not verify_password("anything", stored)


def test_bad_passwords_are_refused() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        hash_password("", FAST)
    with pytest.raises(ValueError, match="at most"):
        hash_password("x" * 1025, FAST)
    assert not verify_password("x" * 1025, hash_password("x", FAST))


def test_parameters_are_bounded() -> None:
    with pytest.raises(ValueError, match="out of range"):
        ScryptParams(ln=21)
