"""Who is asking and for which request: the auth context and the per-request context variable."""

from __future__ import annotations

import contextvars
import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class AuthContext:
    """What a validated token says about its bearer; every API authorizes against this."""

    user_id: str
    user_name: str = ""
    user_domain_id: str = ""
    user_domain_name: str = ""
    project_id: str | None = None
    project_name: str | None = None
    project_domain_id: str | None = None
    project_domain_name: str | None = None
    domain_id: str | None = None
    domain_name: str | None = None
    system_scope: str | None = None
    roles: list[str] = field(default_factory=list)
    role_ids: list[str] = field(default_factory=list)
    token: str = ""
    methods: list[str] = field(default_factory=list)
    expires_at: dt.datetime | None = None
    issued_at: dt.datetime | None = None
    audit_ids: list[str] = field(default_factory=list)
    application_credential_id: str | None = None
    access_rules: list[dict[str, Any]] | None = None
    trust_id: str | None = None
    is_admin_project: bool = False
    password_expires_at: dt.datetime | None = None
    _creds: dict[str, Any] | None = None

    @property
    def scope(self) -> str:
        if self.system_scope:
            return "system"
        if self.project_id:
            return "project"
        if self.domain_id:
            return "domain"
        return "unscoped"

    def is_admin(self) -> bool:
        return "admin" in self.roles

    def creds(self) -> dict[str, Any]:
        """The credentials dict that policy rules are checked against (oslo.policy's names)."""
        if self._creds is None:
            self._creds = {
                "user_id": self.user_id, "user_domain_id": self.user_domain_id,
                "project_id": self.project_id, "project_domain_id": self.project_domain_id,
                "domain_id": self.domain_id, "system_scope": self.system_scope,
                "roles": self.roles, "is_admin_project": self.is_admin_project,
                "trust_id": self.trust_id, "application_credential_id": self.application_credential_id,
                "token": {"user": {"domain": {"id": self.user_domain_id}},
                          "domain": {"id": self.domain_id},
                          "project": {"domain": {"id": self.project_domain_id}}},
            }
        return self._creds


@dataclass(slots=True)
class RequestContext:
    request_id: str
    global_request_id: str | None = None
    auth: AuthContext | None = None

    def log_tag(self) -> str:
        user = self.auth.user_id if self.auth else "-"
        project = (self.auth.project_id or self.auth.domain_id or "-") if self.auth else "-"
        return f"[{self.request_id} {user} {project}]"


current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("cumulo_request",
                                                                                  default=None)
