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
