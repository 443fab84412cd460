"""The log redaction layer: whatever a line or a traceback holds, secrets come out as ***."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from cumulo.core import logging as logmod

FERNET = "gAAAAABpK3xY0aVv1lL8q9Qw-Zt_4c2bYyB7o0JdHk3xJm5WcEwqkR1FzP9sV7nT2uL6hG8aD4fS0eRrQ1yU3iO5pM"


@pytest.fixture
def log_file(tmp_path: Path):
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    path = tmp_path / "cumulo.log"
    logmod.setup("DEBUG", str(path))
    yield path
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    for h in saved:
        root.addHandler(h)
    root.setLevel(level)


def lines(path: Path) -> str:
    for h in logging.getLogger().handlers:
        h.flush()
    return path.read_text()


@pytest.mark.parametrize("line, secret", [
    ('body {"auth": {"identity": {"password": {"user": {"name": "bob", "password": "hunter2-pw"}}}}}',
     "hunter2-pw"),
    ("headers {'X-Auth-Token': 'tok-abcdef123456', 'Accept': 'application/json'}", "tok-abcdef123456"),
    ("X-Subject-Token: opaque-subject-token-1", "opaque-subject-token-1"),
    (f"token issued {FERNET} for admin", FERNET),
    ('{"application_credential": {"id": "abc", "secret": "app-cred-secret-9"}}', "app-cred-secret-9"),
    ('{"server": {"name": "vm", "adminPass": "Adm1nPassw0rd"}}', "Adm1nPassw0rd"),
    ("database postgresql://cumulo:db-pass-77@db.example/cumulo", "db-pass-77"),
    ("bus amqp://guest:rabbit-pw-5@127.0.0.1:5672/", "rabbit-pw-5"),
    ("export OS_PASSWORD=openrc-pw-123", "openrc-pw-123"),
    ("metadata_secret = 'meta-secret-value'", "meta-secret-value"),
    ("Authorization: Bearer bearer-value-42", "bearer-value-42"),
])
def test_secret_is_masked_in_a_log_line(log_file: Path, line: str, secret: str) -> None:
    logging.getLogger("cumulo.test").info("%s", line)
    text = lines(log_file)
    assert secret not in text
    assert "***" in text


def test_registered_secret_is_masked_anywhere(log_file: Path) -> None:
    logmod.add_secret("Zq8-registered-Secret")
    logging.getLogger("cumulo.test").warning("proxy signs with Zq8-registered-Secret (oops)")
    text = lines(log_file)
    assert "Zq8-registered-Secret" not in text and "proxy signs with *** (oops)" in text


def test_secret_in_a_traceback_is_masked(log_file: Path) -> None:
    try:
        raise ValueError(json.dumps({"password": "in-the-traceback-pw"}))
    except ValueError:
        logging.getLogger("cumulo.test").exception("request failed")
    text = lines(log_file)
    assert "in-the-traceback-pw" not in text and "Traceback" in text and "ValueError" in text


def test_ordinary_lines_are_kept(log_file: Path) -> None:
    line = ("identity GET /v3/auth/tokens 200 1.2ms; token_expiration = 3600; http://127.0.0.1:5000/v3; "
            "password_hash_rounds = 12; wrong password for user abc; Could not find token: The token is invalid")
    logging.getLogger("cumulo.test").info(line)
    assert line in lines(log_file)


def test_mask_url_keeps_user_and_host() -> None:
    assert logmod.mask_url("postgresql://db/cumulo?password=s3cr3t&x=1") == "postgresql://db/cumulo?password=***&x=1"
    assert logmod.mask_url("postgresql://cumulo:s3cr3t@db:5432/cumulo") == "postgresql://cumulo:***@db:5432/cumulo"
    assert logmod.mask_url("sqlite:////var/lib/cumulo/cumulo.db") == "sqlite:////var/lib/cumulo/cumulo.db"



def test_validation_faults_do_not_echo_a_password() -> None:
    import fastjsonschema

    from cumulo.core.http import schema
    from cumulo.core.http.faults import ValidationError
    from cumulo.identity.api import validate

    with pytest.raises(ValidationError) as caught:
        validate.string({"password": ["echo-me-not-123"]}, "password")
    assert "echo-me-not-123" not in caught.value.message and "***" in caught.value.message
    check = fastjsonschema.compile({"type": "object", "properties": {"user": {
        "type": "object", "properties": {"password": {"type": "string"}}, "additionalProperties": False}}})
    for body in ({"user": {"password": ["echo-me-not-123"]}},
                 {"user": {"password": "echo-me-not-123" * 9, "unknown": 1}}):
        with pytest.raises(fastjsonschema.JsonSchemaValueException) as exc:
            check(body)
        message = schema._message(exc.value)
        assert "echo-me-not" not in message and "***" in message


def test_config_has_secrets() -> None:
    from cumulo.core import config

    assert not logmod.config_has_secrets(config.load(env={}, state_dir="/nonexistent"))
    assert logmod.config_has_secrets(config.load(env={"CUMULO_DATABASE__URL": "postgresql://u:pw@db/c"},
                                                 state_dir="/nonexistent"))
    assert logmod.config_has_secrets(config.load(env={"CUMULO_COMPUTE__METADATA_SECRET": "x" * 20},
                                                 state_dir="/nonexistent"))


# ---- structured output and rotation ---------------------------------------------------------

@pytest.fixture
def restore_root():  # type: ignore[no-untyped-def]
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    for h in saved:
        root.addHandler(h)
    root.setLevel(level)


def test_json_format_is_one_object_a_line_with_the_request_and_extra_fields(tmp_path: Path, restore_root) -> None:  # type: ignore[no-untyped-def]
    from cumulo.core import context

    path = tmp_path / "cumulo.log"
    logmod.setup("DEBUG", str(path), fmt="json")
    log = logging.getLogger("cumulo.compute.agent")
    log.info("outside")
    token = context.current.set(context.RequestContext("req-11111111-2222-3333-4444-555555555555",
                                                       auth=context.AuthContext("u1", project_id="p1")))
    try:
        log.warning("spawn of %s\nsecond line", "vm-1", extra={"server_id": "vm-1", "password": "hunter2-pw",
                                                                "took_ms": 12.5})
        try:
            raise ValueError("token=gAAAAABpK3xY0aVv1lL8q9Qw-Zt_4c2bYyB7o0JdHk3x")
        except ValueError:
            log.exception("failed")
    finally:
        context.current.reset(token)
    lines(path)
    docs = [json.loads(line) for line in path.read_text().splitlines()]  # every line parses on its own
    assert len(docs) == 3
    assert docs[0]["request_id"] is None and docs[0]["message"] == "outside" and docs[0]["level"] == "INFO"
    second = docs[1]
    assert second["logger"] == "cumulo.compute.agent" and second["level"] == "WARNING"
    assert second["request_id"] == "req-11111111-2222-3333-4444-555555555555"
    assert (second["user_id"], second["project_id"]) == ("u1", "p1")
    assert second["message"] == "spawn of vm-1\nsecond line"
    assert second["server_id"] == "vm-1" and second["took_ms"] == 12.5 and second["password"] == "***"
    assert second["time"].endswith("Z") and "T" in second["time"]
    assert "ValueError" in docs[2]["exception"] and "gAAAAA" not in docs[2]["exception"]
    assert "hunter2-pw" not in path.read_text()


def test_text_stays_the_default(tmp_path: Path, restore_root) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "cumulo.log"
    logmod.setup("INFO", str(path))
    logging.getLogger("cumulo.test").info("plain line")
    text = lines(path)
    assert " INFO cumulo.test [-] plain line" in text and not text.startswith("{")


def test_unknown_format_is_refused() -> None:
    from cumulo.core import config

    with pytest.raises(config.ConfigError, match="logging.format"):
        config.load(env={"CUMULO_LOGGING__FORMAT": "xml"}, state_dir="/nonexistent")
    assert config.load(env={}, state_dir="/nonexistent").logging.format == "text"


def test_the_file_rotates_by_size_keeping_backup_count(tmp_path: Path, restore_root) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "cumulo.log"
    logmod.setup("INFO", str(path), max_bytes=2000, backup_count=2)
    log = logging.getLogger("cumulo.test")
    for i in range(200):
        log.info("line %03d %s", i, "x" * 50)
    lines(path)
    names = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock"))
    assert names == ["cumulo.log", "cumulo.log.1", "cumulo.log.2"], names
    for p in tmp_path.glob("cumulo.log*"):
        if not p.name.endswith(".lock"):
            assert p.stat().st_size < 2000 + 200
            assert p.stat().st_mode & 0o777 == 0o640
    # the newest lines are in cumulo.log, the ones before in .1, then .2; older ones are gone
    files = logmod.rotated_files(path)
    assert [p.name for p in files] == ["cumulo.log.2", "cumulo.log.1", "cumulo.log"]
    numbers = [int(line.split("line ")[1][:3]) for p in files for line in p.read_text().splitlines()]
    assert numbers == sorted(numbers) and numbers[-1] == 199 and numbers[0] > 0


def test_two_handlers_on_one_file_rotate_it_once(tmp_path: Path) -> None:
    """Two processes (API workers) writing one file: the second sees the rename and reopens."""
    path = tmp_path / "cumulo.log"
    a = logmod.RotatingLogFile(str(path), max_bytes=1000, backup_count=3)
    b = logmod.RotatingLogFile(str(path), max_bytes=1000, backup_count=3)
    for h in (a, b):
        h.setFormatter(logging.Formatter("%(message)s"))
    try:
        for i in range(60):
            (a if i % 2 else b).emit(logging.LogRecord("t", logging.INFO, "", 0, f"n{i:02d} " + "y" * 40, (), None))
    finally:
        a.close()
        b.close()
    every = [line[:3] for p in logmod.rotated_files(path) for line in p.read_text().splitlines()]
    assert every == [f"n{i:02d}" for i in range(60 - len(every), 60)]  # none lost, none out of order
    assert len(every) > 40


def test_an_external_logrotate_rename_is_followed(tmp_path: Path, restore_root) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "cumulo.log"
    logmod.setup("INFO", str(path), max_bytes=0)
    logging.getLogger("cumulo.test").info("before")
    path.rename(tmp_path / "cumulo.log.1")
    logging.getLogger("cumulo.test").info("after")
    assert "after" in lines(path) and "after" not in (tmp_path / "cumulo.log.1").read_text()


def test_syslog_output(tmp_path: Path, restore_root) -> None:  # type: ignore[no-untyped-def]
    import socket

    sock_path = str(tmp_path / "log.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(sock_path)
    server.settimeout(5)
    try:
        logmod.setup("INFO", str(tmp_path / "cumulo.log"), syslog=sock_path, syslog_facility="daemon")
        logging.getLogger("cumulo.test").warning("to syslog password=hunter2-pw")
        got = server.recv(4096).decode()
    finally:
        server.close()
    # <PRI>: daemon (3) * 8 + warning (4) = 28
    assert got.startswith("<28>cumulo[") and "WARNING cumulo.test [-] to syslog password=***" in got, got
