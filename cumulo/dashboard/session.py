"""The dashboard's sessions: the token lives in an encrypted cookie, never in the page.

A session is the user's Keystone token plus what the pages need to show who is signed in
(user, project, roles, expiry).  It is sealed with Fernet under a key kept in the state
directory (``dashboard-secret``, 0600), so every API worker can open it and none keeps state.
The cookie is HttpOnly and SameSite=Lax; each session carries a random nonce from which the
CSRF token of its forms is derived (HMAC), so a form posted from another site, or with the token
of another session, is refused.  Logging out revokes the token at identity, which ends the
session everywhere even if the cookie was copied.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken

COOKIE = "cumulo_session"
FLASH = "cumulo_flash"


@dataclass
class Session:
    token: str
    user_id: str
    user_name: str
    domain_id: str
    project_id: str
    project_name: str
    roles: list[str]
    expires_at: float  # the token's expiry, seconds since the epoch
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def can_write(self) -> bool:
        """Whether the project's write actions are offered (the APIs decide in the end)."""
        return bool({"admin", "manager", "member"} & set(self.roles))

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at


class Sealer:
    """Seals sessions into cookie values and opens them again; derives each session's CSRF token."""

    def __init__(self, secret: str) -> None:
        raw = hashlib.sha256(("cumulo-dashboard-session:" + secret).encode()).digest()
        self.fernet = Fernet(base64.urlsafe_b64encode(raw))
        self.mac_key = hashlib.sha256(("cumulo-dashboard-csrf:" + secret).encode()).digest()

    def seal(self, session: Session) -> str:
        return self.fernet.encrypt(orjson.dumps(asdict(session))).decode()

    def open(self, value: str | None) -> Session | None:
        if not value or len(value) > 4096:
            return None
        try:
            data: dict[str, Any] = orjson.loads(self.fernet.decrypt(value.encode()))
            session = Session(**data)
        except (InvalidToken, ValueError, TypeError):
            return None
        return None if session.expired else session

    def csrf(self, session: Session) -> str:
        return hmac.new(self.mac_key, session.nonce.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: Session, offered: str | None) -> bool:
        return bool(offered) and hmac.compare_digest(self.csrf(session), offered or "")

    # flash messages: a short signed cookie read once by the next page
    def flash(self, kind: str, text: str) -> str:
        body = base64.urlsafe_b64encode(orjson.dumps([kind, text[:500]])).decode()
        mac = hmac.new(self.mac_key, body.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{body}.{mac}"

    def read_flash(self, value: str | None) -> tuple[str, str] | None:
        if not value or "." not in value or len(value) > 2048:
            return None
        body, mac = value.rsplit(".", 1)
        if not hmac.compare_digest(hmac.new(self.mac_key, body.encode(), hashlib.sha256).hexdigest()[:32], mac):
            return None
        try:
            kind, text = orjson.loads(base64.urlsafe_b64decode(body))
        except (ValueError, TypeError):
            return None
        return str(kind), str(text)
