"""HTTP Basic (RFC 7617) and Digest (RFC 7616) authentication, and every malformed header."""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import dibble
from dibble.auth import HTTPAuth, RateLimiter, parse_auth_params, protected_by, unprotected
from dibble.testing import TestClient, TestResponse
from dibble.users import ScryptParams, UserStore

PASSWORDS = {"alice": "wonder land", "zoë": "pässwörd"}
KEY = "k" * 32

digest = HTTPAuth("digest", realm="test realm", get_password_for_user=PASSWORDS.get, key=KEY)
basic = HTTPAuth("basic", realm="basic realm", get_password_for_user=PASSWORDS.get, key=KEY)


class Private(dibble.Plugin):
    http_auth = digest

    def onHome(self) -> str:
        return f"hello {self.request.remote_user}"

    @unprotected
    def onOpen(self) -> str:
        return f"open to {self.request.remote_user}"

    @protected_by(basic)
    def onBasic(self) -> str:
        return f"basic {self.request.remote_user}"

    async def onAsync(self, n: int = 0) -> str:
        return f"async {self.request.remote_user} {n}"


class Public(dibble.Plugin):
    def onPublic(self) -> str:
        return f"public {self.request.remote_user}"


def hash_(algorithm: str, text: str) -> str:
    name = {"SHA-256": "sha256", "MD5": "md5"}[algorithm]
    return hashlib.new(name, text.encode("utf-8")).hexdigest()


def challenges(response: TestResponse) -> list[dict[str, str]]:
    found = []
    for name, value in response.header_list:
        if name == "www-authenticate":
            scheme, _, rest = value.partition(" ")
            params = parse_auth_params(rest)
            params["scheme"] = scheme
            found.append(params)
    return found


def answer(
    challenge: dict[str, str],
    *,
    uri: str = "/",
    method: str = "GET",
    user: str = "alice",
    password: str | None = None,
    nc: int | str = 1,
    cnonce: str = "0a4f113b",
    **replace: str,
) -> str:
    """A Digest Authorization value answering ``challenge`` (a client's work)."""
    algorithm = challenge["algorithm"]
    realm = challenge["realm"]
    password = PASSWORDS[user] if password is None else password
    ha1 = hash_(algorithm, f"{user}:{realm}:{password}")
    ha2 = hash_(algorithm, f"{method}:{uri}")
    fields = {
        "username": user,
        "realm": realm,
        "nonce": challenge["nonce"],
        "uri": uri,
        "algorithm": algorithm,
        "qop": "auth",
        "nc": nc if isinstance(nc, str) else f"{nc:08x}",
        "cnonce": cnonce,
        "opaque": challenge["opaque"],
    }
    fields["response"] = hash_(
        algorithm, f"{ha1}:{fields['nonce']}:{fields['nc']}:{cnonce}:auth:{ha2}"
    )
    fields.update(replace)
    return "Digest " + ", ".join(f'{k}="{v}"' for k, v in fields.items() if v != "-")


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(Private()) as made:
        yield made


def first_challenge(
    client: TestClient, path: str = "/", algorithm: str = "SHA-256"
) -> dict[str, str]:
    response = client.get(path)
    assert response.status == 401
    (found,) = [c for c in challenges(response) if c.get("algorithm") == algorithm]
    return found


def authorized(client: TestClient, value: str, path: str = "/") -> TestResponse:
    return client.get(path, headers={"Authorization": value})


def test_the_challenge_offers_sha256_then_md5(client: TestClient) -> None:
    response = client.get("/")
    assert response.status == 401
    assert "You must log in." in response.text
    found = challenges(response)
    assert [(c["scheme"], c["algorithm"]) for c in found] == [
        ("Digest", "SHA-256"),
        ("Digest", "MD5"),
    ]
    for challenge in found:
        assert challenge["realm"] == "test realm"
        assert challenge["qop"] == "auth"
        assert challenge["charset"] == "UTF-8"
        assert len(challenge["nonce"]) >= 40
        assert "stale" not in challenge


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_a_correct_digest_is_accepted(client: TestClient, algorithm: str) -> None:
    challenge = first_challenge(client, algorithm=algorithm)
    response = authorized(client, answer(challenge))
    assert (response.status, response.text) == (200, "hello alice")


def test_a_utf8_user_name(client: TestClient) -> None:
    challenge = first_challenge(client)
    value = answer(challenge, user="zoë")
    raw = f"GET / HTTP/1.1\r\nHost: t\r\nAuthorization: {value}\r\n\r\n".encode()
    (response,) = client.send_raw(raw)
    assert response.text == "hello zoë"
    # RFC 7616's username* (an RFC 8187 ext-value) says the same in ASCII.
    star = answer(challenge, user="zoë", nc=2, username="-")
    star += ", username*=UTF-8''zo%C3%AB"
    assert authorized(client, star).text == "hello zoë"


def test_the_nonce_count_stops_replays(client: TestClient) -> None:
    challenge = first_challenge(client)
    first = answer(challenge, nc=1)
    assert authorized(client, first).status == 200
    replayed = authorized(client, first)
    assert replayed.status == 401
    assert "already made" in replayed.text
    assert authorized(client, answer(challenge, nc=2)).status == 200
    assert authorized(client, answer(challenge, nc=5)).status == 200
    # Counts may arrive out of order (pipelining), but never twice.
    assert authorized(client, answer(challenge, nc=3)).status == 200
    assert authorized(client, answer(challenge, nc=3)).status == 401


def test_an_expired_nonce_is_stale(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    challenge = first_challenge(client)
    later = __import__("time").time() + 301
    monkeypatch.setattr("dibble.auth._http.time.time", lambda: later)
    stale = authorized(client, answer(challenge))
    assert stale.status == 401
    assert "expired" in stale.text
    assert all(c.get("stale") == "true" for c in challenges(stale))
    # Stale only says so when the rest was right.
    wrong = authorized(client, answer(challenge, password="nope", nc=2))
    assert wrong.status == 401
    assert all("stale" not in c for c in challenges(wrong))


@pytest.mark.parametrize(
    "nonce",
    [
        "AAAAAGsBY-FvVrxh49bwgyOMZKWye7E9qNM15CkiTu0",  # well formed, not signed by us
        "AAAAAGsBY-FvVrxh49bw",  # truncated
        "not base64 at all!",
        "",
    ],
)
def test_forged_and_truncated_nonces_are_refused(client: TestClient, nonce: str) -> None:
    challenge = first_challenge(client)
    challenge["nonce"] = nonce
    response = authorized(client, answer(challenge))
    if nonce:
        assert response.status == 401
        assert "not issued here" in response.text
    else:
        assert response.status == 400
        assert "lack nonce" in response.text


def test_a_nonce_from_another_key_is_refused() -> None:
    other = HTTPAuth(
        "digest", realm="test realm", get_password_for_user=PASSWORDS.get, key="o" * 32
    )

    class Other(dibble.Plugin):
        http_auth = other

        def onHome(self) -> str:
            return "other"

    with TestClient(Other()) as client_a, TestClient(Private()) as client_b:
        challenge = first_challenge(client_a)
        assert authorized(client_a, answer(challenge)).status == 200
        refused = authorized(client_b, answer(challenge, nc=2))
        assert refused.status == 401


def test_a_wrong_password_or_user_is_401(client: TestClient) -> None:
    challenge = first_challenge(client)
    assert authorized(client, answer(challenge, password="wrong")).status == 401
    assert authorized(client, answer(challenge, user="mallory", password="x")).status == 401
    tampered = answer(challenge, response="0" * 64)
    assert authorized(client, tampered).status == 401


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"uri": "/other"}, 400, "not this request"),
        ({"qop": "auth-int"}, 400, "qop=auth"),
        ({"nc": "1"}, 400, "8 hexadecimal"),
        ({"nc": "zzzzzzzz"}, 400, "8 hexadecimal"),
        ({"algorithm": "SHA-512-256"}, 400, "not offered"),
        ({"algorithm": "MD5-sess"}, 400, "not offered"),
        ({"cnonce": "-"}, 400, "lack cnonce"),
        ({"response": "-", "uri": "-"}, 400, "lack uri, response"),
        ({"realm": "elsewhere"}, 401, "another realm"),
        ({"opaque": "forged"}, 401, "not from this server"),
        ({"userhash": "true"}, 400, "userhash"),
    ],
)
def test_malformed_digest_credentials(
    client: TestClient, change: dict[str, str], status: int, message: str
) -> None:
    challenge = first_challenge(client)
    response = authorized(client, answer(challenge, **change))
    assert response.status == status
    assert message in html.unescape(response.text)


@pytest.mark.parametrize(
    ("value", "status", "message"),
    [
        ('Digest username="alice", username="bob"', 400, "given twice"),
        ('Digest username="alice" realm', 400, "malformed"),
        ("Digest ,,,", 400, "lack username"),
        ('Digest username="unterminated', 400, "malformed"),
        ("Bearer abc.def", 401, "not 'bearer'"),
        ("Negotiate", 401, "not 'negotiate'"),
        ("Digest " + "x" * 5000, 400, "too long"),
    ],
)
def test_malformed_authorization_headers(
    client: TestClient, value: str, status: int, message: str
) -> None:
    response = authorized(client, value)
    assert response.status == status
    assert message in html.unescape(response.text)


def test_non_utf8_digest_credentials_are_400(client: TestClient) -> None:
    raw = b'GET / HTTP/1.1\r\nHost: t\r\nAuthorization: Digest username="\xff"\r\n\r\n'
    (response,) = client.send_raw(raw)
    assert response.status == 400
    assert "not UTF-8" in response.text


def test_two_authorization_headers_are_400(client: TestClient) -> None:
    response = client.get("/", headers=[("Authorization", "Basic eDp5"), ("Authorization", "x")])
    assert response.status == 400


def basic_value(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic(client: TestClient) -> None:
    response = client.get("/basic")
    assert response.status == 401
    assert response.headers["www-authenticate"] == 'Basic realm="basic realm", charset="UTF-8"'
    ok = authorized(client, basic_value("alice", "wonder land"), "/basic")
    assert (ok.status, ok.text) == (200, "basic alice")
    assert authorized(client, basic_value("zoë", "pässwörd"), "/basic").text == "basic zoë"
    assert authorized(client, basic_value("alice", "wrong"), "/basic").status == 401
    # Digest credentials where Basic is asked for: a new challenge.
    assert authorized(client, 'Digest username="alice"', "/basic").status == 401


@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        ("", "empty"),
        ("!!!!", "not base64"),
        ("YWxpY2U", "not base64"),  # missing padding: not canonical base64
        (base64.b64encode(b"no colon").decode(), "lack the ':'"),
        (base64.b64encode(b"\xff\xfe:x").decode(), "not base64 of UTF-8"),
    ],
)
def test_malformed_basic_credentials_are_400(
    client: TestClient, credentials: str, message: str
) -> None:
    response = authorized(client, f"Basic {credentials}", "/basic")
    assert response.status == 400
    assert message in html.unescape(response.text)


def test_a_methlet_can_be_exempt_and_async_ones_are_guarded(client: TestClient) -> None:
    assert client.get("/open").text == "open to None"
    assert client.get("/async?n=3").status == 401
    challenge = first_challenge(client, "/async?n=3")
    response = authorized(client, answer(challenge, uri="/async?n=3"), "/async?n=3")
    assert response.text == "async alice 3"


def test_server_wide_auth_covers_every_plugin_and_unknown_urls() -> None:
    server = dibble.HTTPServer(
        ("127.0.0.1", 0), dibble.Context(), http_auth=basic, test_mode=True, access_log=False
    )

    class OptedOut(dibble.Plugin):
        http_auth = False

        def onFree(self) -> str:
            return "free"

    server.register(Public())
    server.register(OptedOut(), prefix="/out")
    with TestClient(server) as client:
        assert client.get("/public").status == 401
        assert client.get("/missing").status == 401
        good = basic_value("alice", "wonder land")
        assert authorized(client, good, "/public").text == "public alice"
        assert authorized(client, good, "/missing").status == 404
        assert client.get("/out/free").text == "free"


def test_failures_are_rate_limited() -> None:
    limited = HTTPAuth(
        "basic", get_password_for_user=PASSWORDS.get, key=KEY, rate_limit=RateLimiter(3, 60)
    )

    class Limited(dibble.Plugin):
        http_auth = limited

        def onHome(self) -> str:
            return "in"

    with TestClient(Limited()) as client:
        for _ in range(3):
            assert authorized(client, basic_value("alice", "bad")).status == 401
        refused = authorized(client, basic_value("alice", "wonder land"))
        assert refused.status == 429
        assert int(refused.headers["retry-after"]) > 0


def test_basic_against_the_user_store(tmp_path: Path) -> None:
    users = UserStore(tmp_path / "u.sqlite3", params=ScryptParams(ln=4))
    users.add("carol", "hashed pw")
    stored = HTTPAuth("basic", users=users, key=KEY)

    class Stored(dibble.Plugin):
        http_auth = stored

        def onHome(self) -> str:
            return f"in: {self.request.remote_user}"

    with TestClient(Stored()) as client:
        good = basic_value("carol", "hashed pw")
        assert authorized(client, good).text == "in: carol"
        assert authorized(client, good).text == "in: carol"  # the cached check
        assert authorized(client, basic_value("carol", "nope")).status == 401
        users.set_password("carol", "new pw")  # a cached success ends with its hash
        assert authorized(client, good).status == 401
        assert authorized(client, basic_value("carol", "new pw")).status == 200
    users.close()


def test_digest_needs_clear_passwords() -> None:
    with pytest.raises(ValueError, match="get_password_for_user"):
        HTTPAuth("digest")
    with pytest.raises(ValueError, match="scheme"):
        HTTPAuth("ntlm")  # type: ignore[arg-type]


def test_hooks_can_be_overridden() -> None:
    class Custom(HTTPAuth):
        def get_password_for_user(self, name: str) -> str | None:
            return "pw" if name == "custom" else None

        def get_realm(self, request: dibble.Request) -> str:
            return "custom realm"

        def get_cancel_message(self, request: dibble.Request) -> str:
            return "Go away."

    class Guarded(dibble.Plugin):
        http_auth = Custom(("digest", "basic"), key=KEY)

        def onHome(self) -> str:
            return "custom in"

    with TestClient(Guarded()) as client:
        response = client.get("/")
        assert "Go away." in response.text
        found = challenges(response)
        assert [c["scheme"] for c in found] == ["Digest", "Digest", "Basic"]
        assert found[0]["realm"] == "custom realm"
        value = answer(found[0], user="custom", password="pw")
        assert authorized(client, value).text == "custom in"
        assert authorized(client, basic_value("custom", "pw")).text == "custom in"


Serve = Callable[..., dibble.HTTPServer]


def test_nonces_are_random_and_signed() -> None:
    with TestClient(Private()) as client:
        nonces = {first_challenge(client)["nonce"] for _ in range(20)}
    assert len(nonces) == 20
    assert all(len(base64.urlsafe_b64decode(n + "=")) == 32 for n in nonces)
    assert secrets.compare_digest("a", "a")
