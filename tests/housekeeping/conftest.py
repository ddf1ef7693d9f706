"""Housekeeping fixtures: a clock to move by hand, an SMTP server.

The Redis lock tests use tests/conftest.py's ``redis-server``
(``redis_url``), and the mail tests a real SMTP server (``aiosmtpd``, on
127.0.0.1 and a free port).  Where either is missing the tests that need
it are skipped, except under CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest


def unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Clock:
    """A wall clock for tests: ``clock()`` is the time, ``advance(s)`` moves it."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def dead_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connections are refused)."""
    return free_port()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of its own for each test."""
    return f"test:{uuid.uuid4().hex[:8]}:"


@dataclass
class Mailbox:
    """What an SMTP server received, and how it answers."""

    messages: list[Any] = field(default_factory=list)
    #: Set to e.g. "554 5.7.1 Rejected" to refuse every message.
    refuse: str = ""

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


@dataclass
class SMTPServer:
    host: str
    port: int
    mailbox: Mailbox
    logins: list[tuple[str, str]]


def _authenticator(logins: list[tuple[str, str]]) -> Any:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = data.login.decode(), data.password.decode()
        logins.append((user, password))
        # handled=False: aiosmtpd answers the refusal (535) itself.
        return AuthResult(success=(user, password) == ("mailer", "s3cret"), handled=False)

    return check


def _controller_class() -> Any:
    """aiosmtpd's Controller, counting the connections its server holds open.

    Stopping the server while it still closes a connection (after a QUIT)
    would leave that transport unclosed; the fixture waits for none first.
    (Subclassing and ``factory`` are aiosmtpd's way to customise the server.)
    """
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP

    class CountingSMTP(SMTP):
        def __init__(self, *args: Any, opened: list[int], **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.opened = opened

        def connection_made(self, transport: Any) -> None:
            self.opened[0] += 1
            super().connection_made(transport)

        def connection_lost(self, error: Exception | None) -> None:
            super().connection_lost(error)
            self.opened[0] -= 1

    class CountingController(Controller):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.opened = [0]

        def factory(self) -> Any:
            return CountingSMTP(self.handler, opened=self.opened, **self.SMTP_kwargs)

        def _trigger_server(self) -> None:
            # aiosmtpd's own trigger reads the greeting and hangs up, which the
            # server does not always notice before it is stopped (slowed down,
            # as under coverage); a QUIT has the server close it itself.
            with socket.create_connection((self.hostname, self.port), 5.0) as sock:
                reader = sock.makefile("rb")
                reader.readline()
                sock.sendall(b"QUIT\r\n")
                reader.readline()
                reader.close()

    return CountingController


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1; it accepts the login mailer/s3cret."""
    try:
        controller_class = _controller_class()
    except ImportError:
        unavailable("the aiosmtpd package is not installed (pip install -e '.[test]')")
        raise AssertionError from None  # not reached
    mailbox = Mailbox()
    logins: list[tuple[str, str]] = []
    port = free_port()
    controller = controller_class(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=_authenticator(logins),
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield SMTPServer("127.0.0.1", port, mailbox, logins)
    finally:
        deadline = time.monotonic() + 5
        while controller.opened[0] > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        controller.stop()
