"""Fernet tokens: small encrypted payloads, nothing stored per token.

The key repository is a directory of numbered key files, as Keystone's: ``0`` is the *staged*
key (the next primary, already accepted so every controller knows it before it is used), the
highest number is the *primary* key (new tokens are encrypted with it), the rest are *secondary*
keys that still decrypt older tokens.  ``cumulo identity rotate-keys`` promotes the staged key,
stages a new one and drops the oldest beyond ``[identity] max_active_keys``.  Copy the directory
to every controller after a rotation.

The payload is a msgpack list (version, user, methods, scope, times, audit ids, ...), with UUIDs
packed as 16 bytes; times keep microseconds so a token issued right after a revocation in the same
second is not caught by it.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

VERSION = 1
METHODS = ("password", "token", "application_credential", "totp", "mapped", "oauth1")


class KeyRepositoryError(RuntimeError):
    pass


class KeyRepository:
    def __init__(self, path: Path, max_active_keys: int = 3) -> None:
        self.path, self.max_active_keys = Path(path), max(2, max_active_keys)

    def setup(self) -> None:
        """Create the repository with a staged and a primary key, unless it exists."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.path.stat().st_mode & 0o077:  # the keys sign every token: owner only
            os.chmod(self.path, 0o700)
        if not self._indexes():
            self._write(0, Fernet.generate_key())
            self.rotate()

    def _indexes(self) -> list[int]:
        if not self.path.is_dir():
            return []
        return sorted(int(p.name) for p in self.path.iterdir() if p.name.isdigit())

    def _write(self, index: int, key: bytes) -> None:
        tmp = self.path / f".{index}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        os.replace(tmp, self.path / str(index))

    def rotate(self) -> list[int]:
        """Promote the staged key to primary, stage a new key, and prune; returns the indexes."""
        indexes = self._indexes()
        if 0 not in indexes:
            raise KeyRepositoryError(f"{self.path} has no staged key 0: run `cumulo up` to set it up")
        new_primary = max(indexes) + 1
        os.replace(self.path / "0", self.path / str(new_primary))
        self._write(0, Fernet.generate_key())
        indexes = self._indexes()
        # keep the staged key, the primary and the newest secondaries up to max_active_keys
        excess = len(indexes) - self.max_active_keys
        for index in [i for i in indexes if i != 0][:max(0, excess)]:
            (self.path / str(index)).unlink()
        return self._indexes()

    def stamp(self) -> tuple[tuple[str, int], ...]:
        """Changes whenever a key file is added, removed or replaced."""
        if not self.path.is_dir():
            return ()
        return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in self.path.iterdir() if p.name.isdigit()))

    def keys(self) -> list[bytes]:
        """Keys, primary first (the order MultiFernet encrypts and tries them in)."""
        indexes = self._indexes()
        if len(indexes) < 2:
            raise KeyRepositoryError(f"the key repository {self.path} is not set up")
        order = sorted((i for i in indexes if i != 0), reverse=True) + [0]
        return [(self.path / str(i)).read_bytes().strip() for i in order]


@dataclass(slots=True)
class TokenPayload:
    user_id: str
    methods: list[str]
    expires_at: dt.datetime
    issued_at: dt.datetime
    audit_ids: list[str]
    project_id: str | None = None
    domain_id: str | None = None
    system: str | None = None
    application_credential_id: str | None = None
    trust_id: str | None = None
    extras: dict[str, str] = field(default_factory=dict)

    @property
    def scope_key(self) -> tuple[str, str | None]:
        if self.system:
            return ("system", self.system)
        if self.project_id:
            return ("project", self.project_id)
        if self.domain_id:
            return ("domain", self.domain_id)
        return ("unscoped", None)


def _pack_id(value: str | None) -> bytes | str | None:
    if value is None:
        return None
    if len(value) == 32:
        try:
            packed = uuid.UUID(hex=value)
        except ValueError:
            return value
        return packed.bytes if packed.hex == value else value
    return value


def _unpack_id(value: bytes | str | None) -> str | None:
    if isinstance(value, bytes):
        return uuid.UUID(bytes=value).hex
    return value


def _audit_bytes(audit_id: str) -> bytes:
    return base64.urlsafe_b64decode(audit_id + "=" * (-len(audit_id) % 4))


def new_audit_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


def _micros(t: dt.datetime) -> int:
    return int(t.replace(tzinfo=dt.UTC).timestamp() * 1_000_000)


def _from_micros(v: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(v / 1_000_000, dt.UTC).replace(tzinfo=None)


class TokenCodec:
    """Encrypts payloads into token strings and back; reload() after a key rotation."""

    def __init__(self, repo: KeyRepository) -> None:
        self.repo = repo
        self.reload()

    def reload(self) -> None:
        self._fernet = MultiFernet([Fernet(k) for k in self.repo.keys()])

    def encode(self, p: TokenPayload) -> str:
        scope: list[object] = []
        if p.system:
            scope = [3, p.system]
        elif p.project_id:
            scope = [1, _pack_id(p.project_id)]
        elif p.domain_id:
            scope = [2, _pack_id(p.domain_id)]
        mask = sum(1 << METHODS.index(m) for m in p.methods if m in METHODS)
        body = [VERSION, _pack_id(p.user_id), mask, scope, _micros(p.issued_at), _micros(p.expires_at),
                [_audit_bytes(a) for a in p.audit_ids], _pack_id(p.application_credential_id),
                _pack_id(p.trust_id)]
        token = self._fernet.encrypt(msgpack.packb(body, use_bin_type=True))
        return token.rstrip(b"=").decode()

    def decode(self, token: str) -> TokenPayload:
        """The payload of a token; raises ``InvalidToken`` for anything we did not issue."""
        if not token or len(token) > 1024:
            raise InvalidToken()
        raw = token.encode() + b"=" * (-len(token) % 4)
        data = self._fernet.decrypt(raw)
        try:
            version, user, mask, scope, issued, expires, audits, app_cred, trust = msgpack.unpackb(data)
        except (ValueError, TypeError, msgpack.UnpackException):
            raise InvalidToken() from None
        if version != VERSION:
            raise InvalidToken()
        p = TokenPayload(
            user_id=_unpack_id(user) or "",
            methods=[m for i, m in enumerate(METHODS) if mask & (1 << i)],
            issued_at=_from_micros(issued), expires_at=_from_micros(expires),
            audit_ids=[base64.urlsafe_b64encode(a).rstrip(b"=").decode() for a in audits],
            application_credential_id=_unpack_id(app_cred), trust_id=_unpack_id(trust))
        if scope:
            kind, value = scope
            if kind == 1:
                p.project_id = _unpack_id(value)
            elif kind == 2:
                p.domain_id = _unpack_id(value)
            elif kind == 3:
                p.system = value
        return p


__all__ = ["InvalidToken", "KeyRepository", "KeyRepositoryError", "TokenCodec", "TokenPayload",
           "new_audit_id"]
