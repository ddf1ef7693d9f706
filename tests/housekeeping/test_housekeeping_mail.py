"""The error mail, against a real SMTP server: once a day, only new errors, never twice."""

from __future__ import annotations

import email
import email.policy
import os
import smtplib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dibble.housekeeping import ErrorMail, Housekeeping, MailSettings, error_entries

LINE = "2024-05-01 12:00:{s:02d},123 {level} dibble.error: {text}\n"
DAY = 86400.0


def entry(level: str, text: str, second: int = 0, traceback: str = "") -> str:
    return LINE.format(s=second, level=level, text=text) + traceback


TRACEBACK = (
    'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nValueError: boom\n'
)


def write(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as file:
        file.write(text)


def body_of(message: Any) -> str:
    parsed = email.message_from_bytes(message.original_content, policy=email.policy.default)
    part = parsed.get_body(("plain",))
    assert part is not None
    text: str = part.get_content()
    return text


@pytest.fixture
def make_mail(tmp_path: Path, smtp_server: Any, clock: Any) -> Callable[..., ErrorMail]:
    def make(**settings: Any) -> ErrorMail:
        values: dict[str, Any] = {
            "to": ("ops@example.org", "dev@example.org"),
            "sender": "dibble@example.org",
            "host": smtp_server.host,
            "port": smtp_server.port,
            "timeout": 5.0,
            **settings,
        }
        return ErrorMail(str(tmp_path), MailSettings(**values), name="site", clock=clock)

    return make


def test_error_entries_keep_errors_and_their_tracebacks() -> None:
    text = (
        entry("INFO", "started")
        + entry("ERROR", "one failed", 1, TRACEBACK)
        + entry("WARNING", "slow", 2, "  a continuation of a warning\n")
        + entry("CRITICAL", "all failed", 3)
    )
    entries = error_entries(text)
    assert len(entries) == 2
    assert entries[0].endswith("ValueError: boom")
    assert "one failed" in entries[0]
    assert "continuation" not in "".join(entries)
    assert "CRITICAL dibble.error: all failed" in entries[1]
    assert error_entries(entry("INFO", "x") + "stray line\n") == []


def test_new_errors_are_mailed_once(
    tmp_path: Path, make_mail: Callable[..., ErrorMail], smtp_server: Any, clock: Any
) -> None:
    log = tmp_path / "error.log"
    write(log, entry("INFO", "started") + entry("ERROR", "it broke", 1, TRACEBACK))
    mail = make_mail()
    assert mail() == "mailed 1 error(s) to ops@example.org, dev@example.org"
    (message,) = smtp_server.mailbox.messages
    assert message.mail_from == "dibble@example.org"
    assert message.rcpt_tos == ["ops@example.org", "dev@example.org"]
    body = body_of(message)
    assert "it broke" in body and "ValueError: boom" in body
    assert "started" not in body
    assert "[site] 1 error(s) logged on" in message.original_content.decode()
    # Within the day: nothing more, even with new errors.
    write(log, entry("ERROR", "again", 2))
    clock.advance(3600)
    assert mail() == "mailed less than an interval ago"
    assert len(smtp_server.mailbox.messages) == 1
    # A day later: only what is new.
    clock.advance(DAY)
    assert mail().startswith("mailed 1 error(s)")
    body = body_of(smtp_server.mailbox.messages[1])
    assert "again" in body and "it broke" not in body
    # Nothing new: no mail.
    clock.advance(DAY)
    assert mail() == "no new errors"
    assert len(smtp_server.mailbox.messages) == 2


def test_a_restart_does_not_mail_the_same_errors_again(
    tmp_path: Path, make_mail: Callable[..., ErrorMail], smtp_server: Any, clock: Any
) -> None:
    write(tmp_path / "error.log", entry("ERROR", "once", 1))
    make_mail()()
    clock.advance(2 * DAY)
    restarted = make_mail()  # a new process reads what the last one remembered
    assert restarted() == "no new errors"
    assert len(smtp_server.mailbox.messages) == 1
    assert (tmp_path / ".error-mail.json").exists()


def test_only_errors_mean_a_mail(
    tmp_path: Path, make_mail: Callable[..., ErrorMail], smtp_server: Any
) -> None:
    write(tmp_path / "error.log", entry("INFO", "fine") + entry("WARNING", "meh", 1))
    assert make_mail()() == "no new errors"
    assert smtp_server.mailbox.messages == []
    assert make_mail()() == "no new errors"  # and the position was remembered


def test_no_error_log_no_mail(make_mail: Callable[..., ErrorMail], smtp_server: Any) -> None:
    assert make_mail()() == "no error log"
    assert smtp_server.mailbox.messages == []


def test_a_rotation_is_followed(
    tmp_path: Path, make_mail: Callable[..., ErrorMail], smtp_server: Any, clock: Any
) -> None:
    log = tmp_path / "error.log"
    write(log, entry("ERROR", "first", 1))
    make_mail()()
    write(log, entry("ERROR", "before the rotation", 2))
    os.rename(log, tmp_path / "error.log.1")  # what RotatingFileHandler does
    write(log, entry("ERROR", "after the rotation", 3))
    clock.advance(DAY)
    assert make_mail()().startswith("mailed 2 error(s)")
    body = body_of(smtp_server.mailbox.messages[1])
    assert "before the rotation" in body and "after the rotation" in body
    assert "first" not in body


def test_a_line_still_being_written_waits(
    tmp_path: Path, make_mail: Callable[..., ErrorMail], smtp_server: Any, clock: Any
) -> None:
    log = tmp_path / "error.log"
    write(log, entry("ERROR", "whole", 1) + "2024-05-01 12:00:02,000 ERROR dibble.error: ha")
    make_mail()()
    write(log, "lf done\n")
    clock.advance(DAY)
    make_mail()()
    assert "half done" in body_of(smtp_server.mailbox.messages[1])


def test_a_long_mail_is_cut(
    tmp_path: Path, smtp_server: Any, clock: Any, make_mail: Callable[..., ErrorMail]
) -> None:
    write(tmp_path / "error.log", "".join(entry("ERROR", "x" * 1000, i % 60) for i in range(50)))
    mail = make_mail()
    mail.max_body = 5000
    assert mail() == "mailed 50 error(s) to ops@example.org, dev@example.org"
    body = body_of(smtp_server.mailbox.messages[0])
    assert "more; see the error log." in body
    assert len(body) < 8000


def test_a_login_with_the_password_file(
    tmp_path: Path, make_mail: Callable[..., ErrorMail], smtp_server: Any
) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text("s3cret\n")
    write(tmp_path / "error.log", entry("ERROR", "x"))
    make_mail(user="mailer", password_file=str(secret))()
    assert smtp_server.logins == [("mailer", "s3cret")]
    assert len(smtp_server.mailbox.messages) == 1


def test_a_wrong_login_fails_and_is_retried(
    tmp_path: Path, make_mail: Callable[..., ErrorMail], smtp_server: Any
) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text("wrong")
    write(tmp_path / "error.log", entry("ERROR", "x"))
    with pytest.raises(smtplib.SMTPAuthenticationError):
        make_mail(user="mailer", password_file=str(secret))()
    secret.write_text("s3cret")
    assert make_mail(user="mailer", password_file=str(secret))().startswith("mailed 1")


def test_a_refusing_smtp_server_is_logged_and_retried_at_the_next_tick(
    tmp_path: Path,
    make_mail: Callable[..., ErrorMail],
    smtp_server: Any,
    caplog: pytest.LogCaptureFixture,
    clock: Any,
) -> None:
    write(tmp_path / "error.log", entry("ERROR", "worth a mail"))
    smtp_server.mailbox.refuse = "554 5.7.1 Relaying denied"
    housekeeping = Housekeeping(clock=clock)
    housekeeping.add_job("error mail", make_mail())
    ran = []
    housekeeping.add_job("after", lambda: ran.append(1))
    (mail, after) = housekeeping.run_once()
    assert mail.error is not None and "Relaying denied" in mail.error
    assert after.ok and ran == [1]  # the other jobs still ran
    assert "housekeeping: the job 'error mail' failed" in caplog.text
    assert "Traceback" in caplog.text
    assert not (tmp_path / ".error-mail.json").exists()  # nothing counts as sent
    smtp_server.mailbox.refuse = ""
    clock.advance(300)
    (mail, _) = housekeeping.run_once()
    assert mail.ok and mail.result.startswith("mailed 1")
    assert "worth a mail" in body_of(smtp_server.mailbox.messages[0])


def test_an_smtp_server_that_is_down(
    tmp_path: Path,
    make_mail: Callable[..., ErrorMail],
    dead_port: int,
    caplog: pytest.LogCaptureFixture,
    clock: Any,
    smtp_server: Any,
) -> None:
    write(tmp_path / "error.log", entry("ERROR", "worth a mail"))
    housekeeping = Housekeeping(clock=clock)
    housekeeping.add_job("error mail", make_mail(port=dead_port))
    (run,) = housekeeping.run_once()
    assert run.error is not None and "ConnectionRefusedError" in run.error
    assert "housekeeping: the job 'error mail' failed" in caplog.text
    housekeeping.remove_job("error mail")
    housekeeping.add_job("error mail", make_mail())  # the server is back
    clock.advance(300)
    (run,) = housekeeping.run_once()
    assert run.ok and len(smtp_server.mailbox.messages) == 1


def test_mail_settings_from_the_configuration(tmp_path: Path) -> None:
    from dibble.config import parse_config

    assert MailSettings.from_config(parse_config({})) is None
    config = parse_config(
        {
            "housekeeping": {
                "mail_to": ["ops@example.org"],
                "smtp_host": "mail.example.org",
                "smtp_port": 587,
                "smtp_starttls": True,
                "smtp_user": "mailer",
                "smtp_password_file": "smtp-password",
            }
        },
        base_dir=str(tmp_path),
    )
    settings = MailSettings.from_config(config)
    assert settings is not None
    assert settings.password_file == str(tmp_path / "smtp-password")
    assert (settings.host, settings.port, settings.starttls) == ("mail.example.org", 587, True)
    assert settings.from_address.startswith("dibble@")
    assert settings.interval == DAY


def test_a_damaged_state_file_starts_afresh(
    tmp_path: Path,
    make_mail: Callable[..., ErrorMail],
    smtp_server: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    write(tmp_path / "error.log", entry("ERROR", "x"))
    (tmp_path / ".error-mail.json").write_text("{not json")
    assert make_mail()().startswith("mailed 1")
    assert "is damaged" in caplog.text
    assert make_mail()() == "mailed less than an interval ago"
