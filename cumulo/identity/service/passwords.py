"""Password and secret hashing with bcrypt, off the event loop.

bcrypt only reads the first 72 bytes of a password; longer ones are first reduced with SHA-256
so that every byte counts.  The cost (``[identity] password_hash_rounds``, 4..31) is stored in
each hash, so raising it applies to new passwords without invalidating old ones.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib

import bcrypt


def _prepare(secret: str) -> bytes:
    raw = secret.encode()
    if len(raw) > 72:
        raw = base64.b64encode(hashlib.sha256(raw).digest())
    return raw


def hash_secret(secret: str, rounds: int) -> str:
    return bcrypt.hashpw(_prepare(secret), bcrypt.gensalt(rounds=max(4, min(31, rounds)))).decode()


def check_secret(secret: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(_prepare(secret), hashed.encode())
    except ValueError:
        return False


async def hash_async(secret: str, rounds: int) -> str:
    return await asyncio.to_thread(hash_secret, secret, rounds)


async def check_async(secret: str, hashed: str) -> bool:
    return await asyncio.to_thread(check_secret, secret, hashed)
