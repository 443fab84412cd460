"""Console tokens: a URL's secret, kept in the database as its SHA-256 so that any controller
process (any API worker) can take it, and taken once: the first connection that presents it
consumes it, and one that comes after its time to live (``[compute] console_token_ttl``, 600 s
as Nova's ``[consoleauth] token_ttl``) finds nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select

from cumulo.compute.console_models import ConsoleToken
from cumulo.core.db import Database, utcnow

MAX_TOKEN = 128  # a longer "token" is no token of ours: refused before any hashing or query


@dataclass(frozen=True)
class Console:
    """What a valid token opens: the guest's console of that type, on that node."""

    instance_uuid: str
    console_type: str
    host: str
    path: str


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ConsoleTokens:
    def __init__(self, db: Database, ttl: float = 600.0) -> None:
        self.db, self.ttl = db, ttl

    async def issue(self, instance_uuid: str, console_type: str, host: str, path: str) -> str:
        """A new token for the console; expired tokens are removed on the way."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        async with self.db.session() as s:
            await s.execute(delete(ConsoleToken).where(ConsoleToken.expires_at <= now))
            s.add(ConsoleToken(token_hash=digest(token), instance_uuid=instance_uuid, console_type=console_type,
                               host=host, path=path, expires_at=now + dt.timedelta(seconds=self.ttl)))
        return token

    async def peek(self, token: str, console_type: str) -> Console | None:
        """The console a token opens, without using it up (the noVNC page names its token)."""
        if not token or len(token) > MAX_TOKEN:
            return None
        async with self.db.session() as s:
            row = (await s.execute(select(ConsoleToken).where(
                ConsoleToken.token_hash == digest(token), ConsoleToken.console_type == console_type,
                ConsoleToken.expires_at > utcnow()))).scalar_one_or_none()
            return None if row is None else Console(row.instance_uuid, row.console_type, row.host, row.path)

    async def consume(self, token: str, console_type: str) -> Console | None:
        """The console a valid token opens, the token gone from then on; None for a token that is
        unknown, of another console type, used already or expired.  The delete decides: of two
        connections racing with one token (in two workers, say), only one removes its row."""
        if not token or len(token) > MAX_TOKEN:
            return None
        key = digest(token)
        async with self.db.session() as s:
            row = (await s.execute(select(ConsoleToken).where(ConsoleToken.token_hash == key))).scalar_one_or_none()
            if row is None:
                return None
            found = Console(row.instance_uuid, row.console_type, row.host, row.path)
            fresh = row.expires_at > utcnow()
            gone = await s.execute(delete(ConsoleToken).where(ConsoleToken.token_hash == key))
        if gone.rowcount != 1 or not fresh or found.console_type != console_type:
            return None
        return found

    async def forget(self, instance_uuid: str) -> None:
        """A deleted server's tokens open nothing any more."""
        async with self.db.session() as s:
            await s.execute(delete(ConsoleToken).where(ConsoleToken.instance_uuid == instance_uuid))
