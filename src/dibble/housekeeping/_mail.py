"""Mailing the error log: at most once a day, and only when there are new errors.

The job reads what ``error.log`` gained since the last mail, picks the
entries logged at ERROR or CRITICAL (with their tracebacks: the lines that
follow an entry's first line until the next entry), and sends them to
``[housekeeping] mail_to`` over SMTP (``smtplib``; optional STARTTLS and
login).  It runs in the housekeeping thread, never on the event loop.

What was mailed is remembered in ``.error-mail.json`` in the log folder:
the error log's inode, the offset read up to, and when the last mail went.
A restart therefore never mails the same errors twice, and a rotation
(``error.log`` renamed to ``error.log.1``, same inode) is followed: the
rest of the old file is read, then the new one from its start.

A mail that fails (the SMTP server refuses it, or is down) raises, so the
housekeeping timer logs it; nothing is remembered as sent, and the next
tick tries again.  The position is remembered without a mail when the new
lines hold no error, so each tick reads only what is new.
"""

from __future__ import annotations

import json
import logging
import os
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any, Final, NamedTuple

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["ErrorMail", "MailSettings", "error_entries", "send_mail"]

log: Final = logging.getLogger("dibble.housekeeping")

#: The state file, in the log folder (hidden, and not matched by log cleanup).
STATE_FILE: Final = ".error-mail.json"
ERROR_LOG: Final = "error.log"

# The first line of an entry, as dibble's error log formats it:
# "2024-05-01 12:00:00,123 ERROR dibble.error: message".
_ENTRY: Final = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ([A-Z]+) ")
_SERIOUS: Final = frozenset({"ERROR", "CRITICAL"})


@dataclass(frozen=True, slots=True)
class MailSettings:
    """Where the error mail goes and how it is sent (``[housekeeping]`` settings)."""

    to: tuple[str, ...]
    sender: str = ""
    host: str = "localhost"
    port: int = 25
    starttls: bool = False
    user: str = ""
    #: A file holding the SMTP password (read when a mail is sent).
    password_file: str = ""
    timeout: float = 30.0
    #: Seconds between mails, at least.
    interval: float = 86400.0

    @classmethod
    def from_config(cls, config: Config) -> MailSettings | None:
        """The settings in ``config``; None when no ``mail_to`` is set."""
        section = config.housekeeping
        if not section.mail_to:
            return None
        password_file = section.smtp_password_file
        if password_file and not os.path.isabs(password_file) and config.paths.root:
            password_file = os.path.join(config.paths.root, password_file)
        return cls(
            to=section.mail_to,
            sender=section.mail_from,
            host=section.smtp_host,
            port=section.smtp_port,
            starttls=section.smtp_starttls,
            user=section.smtp_user,
            password_file=password_file,
            timeout=section.smtp_timeout,
            interval=section.mail_interval,
        )

    @property
    def from_address(self) -> str:
        return self.sender or f"dibble@{socket.getfqdn()}"

    def password(self) -> str:
        """The SMTP password, read from ``password_file`` (surrounding whitespace dropped)."""
        with open(self.password_file, encoding="utf-8") as file:
            return file.read().strip()


def send_mail(settings: MailSettings, message: EmailMessage) -> None:
    """Send ``message`` with ``settings``; smtplib's exceptions (or OSError) when it fails."""
    with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
        if settings.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.user:
            smtp.login(settings.user, settings.password())
        refused = smtp.send_message(message)
    if refused:
        # Some recipients took it: sending again would repeat it for them.
        raise smtplib.SMTPRecipientsRefused(refused)


def error_entries(text: str) -> list[str]:
    """The ERROR and CRITICAL entries of error-log ``text``, each with its traceback."""
    entries: list[list[str]] = []
    keeping = False
    for line in text.splitlines():
        match = _ENTRY.match(line)
        if match is not None:
            keeping = match[1] in _SERIOUS
            if keeping:
                entries.append([line])
        elif keeping:
            entries[-1].append(line)
    return ["\n".join(lines) for lines in entries]


class _Position(NamedTuple):
    inode: int
    offset: int


class ErrorMail:
    """The error-mail job for the logs in ``directory``.

    ``name`` (the server's) starts the subject; ``max_read`` bounds what one
    run reads of the log (the newest part is kept), ``max_body`` the mail.
    """

    def __init__(
        self,
        directory: str,
        settings: MailSettings,
        *,
        name: str = "dibble",
        clock: Callable[[], float] = time.time,
        max_read: int = 8 * 1024 * 1024,
        max_body: int = 256 * 1024,
        send: Callable[[MailSettings, EmailMessage], None] = send_mail,
    ) -> None:
        self.directory = directory
        self.settings = settings
        self.name = name
        self.clock = clock
        self.max_read = max_read
        self.max_body = max_body
        self.send = send

    def __repr__(self) -> str:
        return f"<ErrorMail {self.directory} to {', '.join(self.settings.to)}>"

    @property
    def state_path(self) -> str:
        return os.path.join(self.directory, STATE_FILE)

    # --- the state --------------------------------------------------------------------

    def load_state(self) -> dict[str, Any]:
        """What was mailed: ``inode``, ``offset`` and ``sent`` (empty when nothing was)."""
        try:
            with open(self.state_path, encoding="utf-8") as file:
                state = json.load(file)
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            # Failing at every tick would never mail again; starting afresh
            # mails what the current log holds, once.
            log.warning("housekeeping: %s is damaged (%s); starting afresh", self.state_path, exc)
            return {}
        return state if isinstance(state, dict) else {}

    def _save_state(self, state: dict[str, Any]) -> None:
        temporary = self.state_path + ".tmp"
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.state_path)

    # --- reading the log ----------------------------------------------------------------

    def _read(self, path: str, offset: int) -> tuple[str, int]:
        """Whole lines of ``path`` from ``offset``; the text and the offset after it."""
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size - offset > self.max_read:
                offset = size - self.max_read
            file.seek(offset)
            data = file.read(size - offset)
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next run
        return data[:end].decode("utf-8", errors="replace"), offset + end

    def _rotated(self, inode: int) -> str | None:
        """The rotated error log that is the file ``inode`` was, if it is still here."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return None
        for name in sorted(names):
            if name.startswith(ERROR_LOG + "."):
                path = os.path.join(self.directory, name)
                try:
                    if os.stat(path).st_ino == inode:
                        return path
                except OSError:
                    continue
        return None

    def new_text(self, state: dict[str, Any]) -> tuple[str, _Position | None]:
        """What the error log gained since ``state``, and the position after it."""
        current = os.path.join(self.directory, ERROR_LOG)
        try:
            inode = os.stat(current).st_ino
        except FileNotFoundError:
            return "", None
        known = int(state.get("inode", 0))
        offset = int(state.get("offset", 0))
        if known == inode:
            if os.stat(current).st_size >= offset:
                text, end = self._read(current, offset)
                return text, _Position(inode, end)
            offset = 0  # truncated in place: start again
        parts: list[str] = []
        if known and known != inode:
            old = self._rotated(known)
            if old is not None:
                parts.append(self._read(old, offset)[0])
        text, end = self._read(current, 0)
        parts.append(text)
        return "".join(parts), _Position(inode, end)

    # --- the job ------------------------------------------------------------------------

    def __call__(self) -> str:
        state = self.load_state()
        now = self.clock()
        sent = float(state.get("sent", 0.0))
        if sent and now - sent < self.settings.interval:
            return "mailed less than an interval ago"
        text, position = self.new_text(state)
        if position is None:
            return "no error log"
        entries = error_entries(text)
        if entries:
            self.send(self.settings, self.message(entries, sent))
        new_state = {"inode": position.inode, "offset": position.offset, "sent": sent}
        if entries:
            new_state["sent"] = now
        self._save_state(new_state)
        if not entries:
            return "no new errors"
        return f"mailed {len(entries)} error(s) to {', '.join(self.settings.to)}"

    def message(self, entries: list[str], since: float) -> EmailMessage:
        """The mail for ``entries`` (logged since ``since``, 0: since the log began)."""
        host = socket.gethostname()
        count = len(entries)
        when = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
            if since
            else "the error log began"
        )
        lines = [
            f"{count} error(s) were logged by {self.name} on {host} since {when}.",
            f"The error log is {os.path.join(self.directory, ERROR_LOG)}.",
            "",
        ]
        size = sum(len(line) + 1 for line in lines)
        for shown, entry in enumerate(entries):
            if size + len(entry) + 2 > self.max_body and shown:
                lines.append(f"... and {count - shown} more; see the error log.")
                break
            lines.extend((entry, ""))
            size += len(entry) + 2
        message = EmailMessage()
        message["Subject"] = f"[{self.name}] {count} error(s) logged on {host}"
        message["From"] = self.settings.from_address
        message["To"] = ", ".join(self.settings.to)
        message["Date"] = formatdate(localtime=True)
        message["Message-ID"] = make_msgid(domain=host)
        message.set_content("\n".join(lines))
        return message
