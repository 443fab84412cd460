"""Password and secret hashing with bcrypt, off the event loop.

bcrypt only reads the first 72 bytes of a password; longer ones are first reduced with SHA-256
so that every byte counts.  The cost (``[identity] password_hash_rounds``, 4..31) is stored in
each hash, so raising it applies to new passwords without invalidating old ones.

Hashes run in a pool of their own, one thread per core, at a lower CPU priority (nice +5, a
third of a normal thread's share when the CPU is contended): a flood of password logins then
yields the cores to the event loops, so a token validation or a list does not wait behind it,
while logins still progress next to busy guests (+10 starved them to 1-2% of a core).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import hashlib
import os
import threading

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


NICE = 5


def _yield_to_the_loop() -> None:
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)  # this thread only (Linux)


_POOL = concurrent.futures.ThreadPoolExecutor(max(1, os.cpu_count() or 1), thread_name_prefix="bcrypt",
                                              initializer=_yield_to_the_loop)


async def hash_async(secret: str, rounds: int) -> str:
    return await asyncio.get_running_loop().run_in_executor(_POOL, hash_secret, secret, rounds)


async def check_async(secret: str, hashed: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(_POOL, check_secret, secret, hashed)
