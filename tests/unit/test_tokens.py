"""Fernet token payloads and the key repository."""

from __future__ import annotations

import datetime as dt

import pytest

from cumulo.identity.tokens import InvalidToken, KeyRepository, TokenCodec, TokenPayload, new_audit_id


def payload(**kw) -> TokenPayload:  # type: ignore[no-untyped-def]
    now = dt.datetime(2026, 1, 2, 3, 4, 5, 678901)
    base = dict(user_id="0123456789abcdef0123456789abcdef", methods=["password", "token"],
                expires_at=now + dt.timedelta(hours=1), issued_at=now, audit_ids=[new_audit_id()])
    base.update(kw)
    return TokenPayload(**base)


def test_round_trip_keeps_every_field_and_microseconds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    repo = KeyRepository(tmp_path / "keys")
    repo.setup()
    codec = TokenCodec(repo)
    for p in (payload(project_id="fedcba9876543210fedcba9876543210"), payload(domain_id="default"),
              payload(system="all"), payload(application_credential_id="a" * 32, project_id="b" * 32),
              payload(audit_ids=[new_audit_id(), new_audit_id()])):
        assert codec.decode(codec.encode(p)) == p


def test_non_uuid_ids_survive(tmp_path) -> None:  # type: ignore[no-untyped-def]
    repo = KeyRepository(tmp_path / "keys")
    repo.setup()
    codec = TokenCodec(repo)
    p = payload(user_id="ABCDEF0123456789ABCDEF0123456789", project_id="my-project")
    assert codec.decode(codec.encode(p)) == p


def test_rotation_keeps_old_tokens_until_their_key_is_pruned(tmp_path) -> None:  # type: ignore[no-untyped-def]
    repo = KeyRepository(tmp_path / "keys", max_active_keys=3)
    repo.setup()
    old = TokenCodec(repo).encode(payload())
    assert repo.rotate() == [0, 1, 2]
    assert TokenCodec(repo).decode(old)
    repo.rotate()  # key 1 (which made `old`) is pruned
    with pytest.raises(InvalidToken):
        TokenCodec(repo).decode(old)


def test_garbage_and_tampered_tokens_are_invalid(tmp_path) -> None:  # type: ignore[no-untyped-def]
    repo = KeyRepository(tmp_path / "keys")
    repo.setup()
    codec = TokenCodec(repo)
    token = codec.encode(payload())
    for bad in ("", "x", token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1], "g" * 2000):
        with pytest.raises(InvalidToken):
            codec.decode(bad)
    other = KeyRepository(tmp_path / "other")
    other.setup()
    with pytest.raises(InvalidToken):
        TokenCodec(other).decode(token)
