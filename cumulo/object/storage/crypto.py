"""Encryption at rest of object bodies, Swift's keymaster + encryption model.

Turning it on and off
    ``[object] encryption = true`` (the default; ``CUMULO_OBJECT__ENCRYPTION=false`` turns it off)
    encrypts every body written from then on.  Off, new bodies are written in the clear; bodies
    written encrypted still read as long as their root secret is there, and bodies written before
    it was on read as they are (each copy's trailer says whether it is encrypted).

Keys
    The root secrets are in ``<state_dir>/object/root-secret`` (JSON, mode 0600), made with one
    secret at the first start with encryption on: ``{"active": "<id>", "secrets": {"<id>":
    "<base64 of 32 random bytes>"}}``.  ``cumulo object key rotate`` adds a new secret, with a new
    id, and makes it the active one; a running server takes it for new writes when it restarts.
    Older secrets stay and still decrypt what they encrypted (there is no re-encryption of old
    bodies: never delete a secret from the file).  ``cumulo object key show`` lists the ids.
    Losing the file loses every encrypted body: back it up apart from the devices.

    Each body gets its own random 256-bit key.  It is wrapped (AES key wrap, RFC 3394) by a key
    derived from the active root secret and the object's path ``/<account>/<container>/<object>``
    with HMAC-SHA256, as Swift's keymaster derives its per-object keys, and the wrapped key, the
    secret's id and the IV are kept in the copy's trailer (``crypto``).  The body is AES-256-CTR,
    so a range is decrypted from its own offset and Range requests stay cheap.

What is and is not encrypted
    The ``.data`` files hold the ciphertext; their trailer's ``etag`` is the ciphertext's md5 (so
    the auditor, the replicator and the read checks work on the stored bytes as before) and the
    plaintext md5 is kept encrypted with the body key.  Clients see the plaintext md5 as the
    ETag, from the listing in the database.  Not encrypted: the trailer's object name and user
    metadata, and everything in the database (names, sizes, ETags, metadata), as Swift leaves
    names and sizes in the clear too."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

SECRET_FILE = "root-secret"
MAX_SECRETS = 1000  # rotations kept in one file


class CryptoError(Exception):
    """A body cannot be decrypted: its root secret is missing, or its wrapped key is damaged."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any, length: int | None = None) -> bytes:
    try:
        raw = base64.b64decode(str(text), validate=True)
    except ValueError:
        raise CryptoError("bad base64 in the crypto trailer") from None
    if length is not None and len(raw) != length:
        raise CryptoError("a key or IV of the wrong length")
    return raw


def _ctr(key: bytes, iv: bytes, offset: int) -> Any:
    """An AES-CTR context positioned at byte ``offset`` of the stream that starts at ``iv``."""
    block, skip = divmod(offset, 16)
    counter = ((int.from_bytes(iv, "big") + block) % (1 << 128)).to_bytes(16, "big")
    ctx = Cipher(algorithms.AES(key), modes.CTR(counter)).encryptor()
    if skip:
        ctx.update(b"\0" * skip)
    return ctx


class KeyMaster:
    """The root secrets of ``<state_dir>/object/root-secret`` and the keys derived from them."""

    def __init__(self, path: Path, active: str, keys: dict[str, bytes]) -> None:
        self.path, self.active, self.keys = path, active, keys

    @classmethod
    def load(cls, path: Path) -> KeyMaster:
        try:
            data = json.loads(path.read_text())
            keys = {str(k): _unb64(v, 32) for k, v in data["secrets"].items()}
            active = str(data["active"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError, CryptoError) as exc:
            raise CryptoError(f"{path}: not a root secret file ({exc})") from None
        if active not in keys:
            raise CryptoError(f"{path}: the active secret {active!r} is not in the file")
        return cls(path, active, keys)

    @classmethod
    def open(cls, state_dir: Path, *, create: bool) -> KeyMaster | None:
        """The state directory's secrets; made (one secret) when ``create`` and there are none;
        None when there are none and ``create`` is false."""
        path = Path(state_dir) / "object" / SECRET_FILE
        if not path.exists():
            if not create:
                return None
            path.parent.mkdir(parents=True, exist_ok=True)
            _write(path, {"active": "1", "secrets": {"1": _b64(secrets.token_bytes(32))}}, exclusive=True)
        return cls.load(path)

    @classmethod
    def rotate(cls, state_dir: Path) -> str:
        """Add a new root secret and make it the active one; its id."""
        km = cls.open(state_dir, create=True)
        assert km is not None
        if len(km.keys) >= MAX_SECRETS:
            raise CryptoError(f"{km.path} already holds {MAX_SECRETS} secrets")
        new_id = str(max((int(k) for k in km.keys if k.isdigit()), default=0) + 1)
        data = {"active": new_id, "secrets": {**{k: _b64(v) for k, v in km.keys.items()},
                                              new_id: _b64(secrets.token_bytes(32))}}
        _write(km.path, data, exclusive=False)
        return new_id

    def object_key(self, key_id: str, path: str) -> bytes:
        secret = self.keys.get(key_id)
        if secret is None:
            # rotated by the CLI since this server read the file: read it again
            try:
                fresh = KeyMaster.load(self.path)
            except CryptoError:
                fresh = self
            self.keys.update(fresh.keys)
            secret = self.keys.get(key_id)
            if secret is None:
                raise CryptoError(f"root secret {key_id!r} is not in {self.path}")
        return hmac.new(secret, path.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()

    def encrypter(self, path: str) -> Encrypter:
        return Encrypter(self, path)

    def decrypter(self, path: str, trailer: Any) -> Decrypter:
        """The decrypter of a copy whose trailer's ``crypto`` is ``trailer``; CryptoError when
        its secret is not here or its key does not unwrap."""
        if not isinstance(trailer, dict):
            raise CryptoError("bad crypto trailer")
        wrapping = self.object_key(str(trailer.get("key_id")), path)
        try:
            body_key = aes_key_unwrap(wrapping, _unb64(trailer.get("key"), 40))
        except InvalidUnwrap:
            raise CryptoError(f"the body key of {path} does not unwrap with secret {trailer.get('key_id')!r}") from None
        iv = _unb64(trailer.get("iv"), 16)
        etag_iv = _unb64(trailer.get("etag_iv"), 16)
        etag = _ctr(body_key, etag_iv, 0).update(_unb64(trailer.get("etag"), 16)).hex()
        return Decrypter(body_key, iv, etag)


class Encrypter:
    """One body's encryption as it is written: ``update`` each chunk in order, then ``trailer``."""

    def __init__(self, km: KeyMaster, path: str) -> None:
        self.km, self.path, self.key_id = km, path, km.active
        self.body_key, self.iv = secrets.token_bytes(32), secrets.token_bytes(16)
        self._ctx = _ctr(self.body_key, self.iv, 0)

    def update(self, data: bytes) -> bytes:
        return self._ctx.update(data)  # type: ignore[no-any-return]

    def trailer(self, etag: str) -> dict[str, str]:
        etag_iv = secrets.token_bytes(16)
        wrapped = aes_key_wrap(self.km.object_key(self.key_id, self.path), self.body_key)
        return {"key_id": self.key_id, "key": _b64(wrapped), "iv": _b64(self.iv), "etag_iv": _b64(etag_iv),
                "etag": _b64(_ctr(self.body_key, etag_iv, 0).update(bytes.fromhex(etag)))}


class Decrypter:
    def __init__(self, body_key: bytes, iv: bytes, etag: str) -> None:
        self.body_key, self.iv, self.etag = body_key, iv, etag

    def at(self, offset: int) -> Any:
        """A context whose ``update`` decrypts the body from ``offset`` on, chunk after chunk."""
        return _ctr(self.body_key, self.iv, offset)


def _write(path: Path, data: dict[str, Any], *, exclusive: bool) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps(data, indent=1).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    if exclusive:
        try:
            os.link(tmp, path)  # two first starts at once: one file wins, both read it
        except FileExistsError:
            pass
        os.unlink(tmp)
    else:
        os.replace(tmp, path)
    os.chmod(path, 0o600)


__all__ = ["CryptoError", "Decrypter", "Encrypter", "KeyMaster"]
