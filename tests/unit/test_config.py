"""Configuration: defaults, the TOML file, environment overrides and errors."""

from __future__ import annotations

import pytest

from cumulo.core import config


def test_defaults_give_sqlite_in_the_state_dir() -> None:
    cfg = config.load(env={})
    assert cfg.database_url == "sqlite:////var/lib/cumulo/cumulo.db"
    assert cfg.identity.port == 5000 and cfg.bus.url == "memory://"


def test_file_then_environment_override(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.toml"
    path.write_text('state_dir = "/srv/x"\n[identity]\nport = 5050\n[identity.security_compliance]\n'
                    'lockout_failure_attempts = 5\n')
    cfg = config.load(path, env={"CUMULO_IDENTITY__PORT": "6000", "CUMULO_BUS__URL": "amqp://h/"})
    assert cfg.state_dir == "/srv/x" and cfg.identity.port == 6000 and cfg.bus.url == "amqp://h/"
    assert cfg.identity.security_compliance.lockout_failure_attempts == 5
    assert cfg.source == str(path)


def test_nested_environment_and_types() -> None:
    cfg = config.load(env={"CUMULO_IDENTITY__SECURITY_COMPLIANCE__LOCKOUT_DURATION": "7",
                           "CUMULO_METRICS__ENABLED": "false", "CUMULO_SERVICES": "identity,image"})
    assert cfg.identity.security_compliance.lockout_duration == 7
    assert cfg.metrics.enabled is False and cfg.services == ["identity", "image"]


@pytest.mark.parametrize("env", [{"CUMULO_IDENTITY__PORTT": "1"}, {"CUMULO_IDENTITY__PORT": "abc"},
                                 {"CUMULO_METRICS__ENABLED": "maybe"}])
def test_bad_settings_are_named(env) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(config.ConfigError) as exc:
        config.load(env=env)
    assert "identity" in str(exc.value) or "metrics" in str(exc.value)


def test_show_renders_toml_that_loads_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = config.load(env={"CUMULO_IDENTITY__PORT": "5123"})
    text = config.to_toml(config.as_dict(cfg))
    path = tmp_path / "again.toml"
    path.write_text(text)
    assert config.load(path, env={}).identity.port == 5123
