"""Authentication and tokens: who may have a token, what it says, and when it stops working.

Issue: the methods in the request (password, token, application_credential) must all name the
same user; the scope (project, domain, system, trust, or none) must carry at least one role.
Validate: decrypt, check expiry and revocation events, then re-read what the token stands for
(user and project still enabled, roles still held), so a change takes effect on the next request.
The result is cached per token until any identity write moves the generation on.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import OrderedDict
from typing import Any

from sqlalchemy import select

from cumulo.core.context import AuthContext
from cumulo.core.db import utcnow
from cumulo.core.http.faults import BadRequest, Forbidden, NotFound, Unauthorized, ValidationError
from cumulo.identity import models as m
from cumulo.identity.service.assignments import SYSTEM, AssignmentMixin
from cumulo.identity.service.passwords import check_async
from cumulo.identity.tokens import InvalidToken, TokenCodec, TokenPayload, new_audit_id

LOG = logging.getLogger(__name__)
AUTH_FAILED = "The request you have made requires authentication."
CACHE_SIZE = 20000


def denied(reason: str) -> Unauthorized:
    """The generic 401 a client sees; the reason goes to the log for the operator."""
    LOG.info("authentication failed: %s", reason)
    return Unauthorized(AUTH_FAILED)


class TokenInvalid(Unauthorized):
    def __init__(self, message: str = "The token is invalid, expired or revoked.") -> None:
        super().__init__(message)


class AuthMixin(AssignmentMixin):
    codec: TokenCodec

    def _init_auth(self) -> None:
        self._validated: OrderedDict[str, tuple[int, AuthContext]] = OrderedDict()
        self._events: list[m.RevocationEvent] | None = None
        self._catalog: list[dict[str, Any]] | None = None

    def _on_invalidate(self) -> None:
        self._validated.clear()
        self._events = None
        self._catalog = None

    # -- revocation -------------------------------------------------------------------------
    async def revoke(self, **fields: str | None) -> None:
        now = utcnow()
        event = m.RevocationEvent(issued_before=now, revoked_at=now,
                                  **{k: v for k, v in fields.items() if v is not None})
        async with self.db.session() as s:
            s.add(event)
        await self.changed("revocation")

    async def _revocation_events(self) -> list[m.RevocationEvent]:
        if self._events is None:
            gen = self.generation
            horizon = utcnow() - dt.timedelta(seconds=self.cfg.identity.token_expiration +
                                              self.cfg.identity.allow_expired_window)
            async with self.db.session() as s:
                events = list((await s.execute(select(m.RevocationEvent).where(
                    m.RevocationEvent.revoked_at >= horizon))).scalars())
            if gen == self.generation:
                self._events = events
            return events
        return self._events

    @staticmethod
    def _revoked_by(e: m.RevocationEvent, p: TokenPayload) -> bool:
        if p.issued_at > e.issued_before:
            return False
        if e.user_id and e.user_id != p.user_id:
            return False
        if e.project_id and e.project_id != p.project_id:
            return False
        if e.domain_id and e.domain_id != p.domain_id:
            return False
        if e.audit_id and e.audit_id != p.audit_ids[0]:
            return False
        if e.audit_chain_id and e.audit_chain_id != p.audit_ids[-1]:
            return False
        if e.trust_id and e.trust_id != p.trust_id:
            return False
        if e.application_credential_id and e.application_credential_id != p.application_credential_id:
            return False
        return True

    async def is_revoked(self, p: TokenPayload) -> bool:
        return any(self._revoked_by(e, p) for e in await self._revocation_events())

    # -- validation -------------------------------------------------------------------------
    def decode(self, token: str) -> TokenPayload:
        try:
            return self.codec.decode(token)
        except InvalidToken:
            raise TokenInvalid() from None

    async def validate(self, token: str, allow_expired: bool = False) -> AuthContext:
        """The AuthContext of a token, or ``TokenInvalid`` (401)."""
        now = utcnow()
        self.follow()
        hit = self._validated.get(token)
        if hit is not None and hit[0] == self.generation:
            ctx = hit[1]
            if ctx.expires_at and ctx.expires_at > now:
                return ctx
        payload = self.decode(token)
        if payload.expires_at <= now:
            window = dt.timedelta(seconds=self.cfg.identity.allow_expired_window)
            if not allow_expired or payload.expires_at + window <= now:
                raise TokenInvalid("The token has expired.")
        gen = self.generation
        if await self.is_revoked(payload):
            raise TokenInvalid("The token has been revoked.")
        ctx = await self._context(payload)
        ctx.token = token
        if gen == self.generation and payload.expires_at > now:
            self._validated[token] = (gen, ctx)
            if len(self._validated) > CACHE_SIZE:
                self._validated.popitem(last=False)
        return ctx

    async def ec2_context(self, access: str) -> tuple[str, AuthContext] | None:
        """The secret of the EC2 credential with this access key and the context of its user in
        its project (roles as a token scoped there would carry), or None when there is no such
        credential or its user or project cannot act (S3's signatures are checked with these)."""
        import hashlib
        import json
        cred = await self.cached(m.Credential, hashlib.sha256(access.encode()).hexdigest())
        if cred is None or cred.type != "ec2" or not cred.project_id:
            return None
        now = utcnow()
        try:
            secret = json.loads(cred.blob)["secret"]
            ctx = await self._context(TokenPayload(cred.user_id, ["ec2credential"], now + dt.timedelta(hours=1),
                                                   now, [new_audit_id()], project_id=cred.project_id))
        except (TokenInvalid, ValueError, KeyError, TypeError):
            return None
        return str(secret), ctx

    async def _context(self, p: TokenPayload) -> AuthContext:
        """What the token stands for now: every read goes through the per-generation memo."""
        user = await self.cached(m.User, p.user_id)
        if user is None or not user.enabled:
            raise TokenInvalid()
        user_domain = await self.cached(m.Domain, user.domain_id)
        if user_domain is None or not user_domain.enabled:
            raise TokenInvalid()
        ctx = AuthContext(user_id=user.id, user_name=user.name, user_domain_id=user.domain_id,
                          user_domain_name=user_domain.name, methods=p.methods,
                          expires_at=p.expires_at, issued_at=p.issued_at, audit_ids=p.audit_ids,
                          application_credential_id=p.application_credential_id,
                          trust_id=p.trust_id)
        if "password" in p.methods:
            current = await self.current_password(user.id)
            ctx.password_expires_at = current.expires_at if current else None
        if p.project_id:
            project = await self.cached(m.Project, p.project_id)
            if project is None or not project.enabled:
                raise TokenInvalid()
            pdomain = await self.cached(m.Domain, project.domain_id)
            if pdomain is None or not pdomain.enabled:
                raise TokenInvalid()
            ctx.project_id, ctx.project_name = project.id, project.name
            ctx.project_domain_id, ctx.project_domain_name = pdomain.id, pdomain.name
            ctx.is_admin_project = (project.name == self.cfg.bootstrap.admin_project and
                                    pdomain.id == self.cfg.identity.default_domain_id)
        elif p.domain_id:
            domain = await self.cached(m.Domain, p.domain_id)
            if domain is None or not domain.enabled:
                raise TokenInvalid()
            ctx.domain_id, ctx.domain_name = domain.id, domain.name
        elif p.system:
            ctx.system_scope = p.system
        trust = None
        if p.trust_id:
            trust = await self.cached(m.Trust, p.trust_id)
            if trust is None or trust.deleted_at is not None or (
                    trust.expires_at and trust.expires_at <= utcnow()):
                raise TokenInvalid()
        app_cred = None
        if p.application_credential_id:
            app_cred = await self.cached(m.ApplicationCredential, p.application_credential_id)
            if app_cred is None or (app_cred.expires_at and app_cred.expires_at <= utcnow()):
                raise TokenInvalid()
        scope_type, scope_id = p.scope_key
        if scope_type == "system":  # assignments name the system target, tokens say "all"
            scope_id = SYSTEM
        if scope_type != "unscoped":
            roles = await self._scoped_roles(user.id, scope_type, scope_id or "", trust, app_cred)
            if not roles:
                raise TokenInvalid()
            ctx.roles = [r.name for r in roles]
            ctx.role_ids = [r.id for r in roles]
        if app_cred is not None and app_cred.access_rule_ids:
            rules = await self.list(m.AccessRule, m.AccessRule.id.in_(app_cred.access_rule_ids))
            ctx.access_rules = [{"id": r.id, "service": r.service, "path": r.path, "method": r.method}
                                for r in rules]
        return ctx

    async def _scoped_roles(self, user_id: str, scope_type: str, scope_id: str, trust: m.Trust | None,
                            app_cred: m.ApplicationCredential | None) -> list[m.Role]:
        if trust is not None:
            held = {r.id for r in await self.effective_roles(trust.trustor_user_id, "project", scope_id)}
            wanted = await self.expand_implied(set(trust.role_ids))
            if not set(trust.role_ids) <= held:
                return []
            roles = await self.roles_by_id()
            return [roles[r] for r in wanted if r in roles]
        effective = await self.effective_roles(user_id, scope_type, scope_id)
        if app_cred is not None:
            allowed = set(await self.expand_implied(set(app_cred.role_ids)))
            if not set(app_cred.role_ids) <= {r.id for r in effective}:
                return []
            effective = [r for r in effective if r.id in allowed]
        return effective

    # -- issuing ----------------------------------------------------------------------------
    async def authenticate(self, auth: Any, caller_token: str | None = None) -> tuple[str, AuthContext]:
        """Check an ``{"auth": ...}`` request; returns the new token and its context."""
        if not isinstance(auth, dict) or not isinstance(auth.get("identity"), dict):
            raise ValidationError("Expecting to find identity in auth - the server could not comply "
                                  "with the request since it is either malformed or otherwise incorrect.")
        identity = auth["identity"]
        methods = identity.get("methods")
        if not isinstance(methods, list) or not methods or not all(isinstance(x, str) for x in methods):
            raise ValidationError("identity.methods must be a non-empty list of method names.")
        for method in methods:
            if method not in ("password", "token", "application_credential"):
                raise Unauthorized(f"Attempted to authenticate with an unsupported method: {method}.")
            if not isinstance(identity.get(method), dict):
                raise ValidationError(f"Expecting to find {method} in identity.")
        scope = auth.get("scope")
        if scope is not None and scope != "unscoped" and not isinstance(scope, dict):
            raise ValidationError("scope must be an object or the string 'unscoped'.")
        user_id: str | None = None
        expires_cap: dt.datetime | None = None
        audit_chain: str | None = None
        all_methods: list[str] = []
        app_cred: m.ApplicationCredential | None = None
        parent: TokenPayload | None = None
        for method in methods:
            data = identity[method]
            if method == "password":
                uid = await self._auth_password(data)
            elif method == "token":
                parent, uid = await self._auth_token(data)
                expires_cap = parent.expires_at
                audit_chain = parent.audit_ids[-1]
                all_methods.extend(parent.methods)
            else:
                app_cred = await self._auth_app_cred(data)
                uid = app_cred.user_id
                if app_cred.expires_at:
                    expires_cap = app_cred.expires_at
            if user_id is not None and uid != user_id:
                raise Unauthorized("All authentication methods must identify the same user.")
            user_id = uid
            all_methods.append(method)
        assert user_id is not None
        methods_out = list(dict.fromkeys(all_methods))
        scope_type, scope_id, trust = await self._resolve_scope(user_id, scope, app_cred, parent)
        now = utcnow()
        expires = now + dt.timedelta(seconds=self.cfg.identity.token_expiration)
        if expires_cap and expires_cap < expires:
            expires = expires_cap
        if trust is not None and trust.expires_at and trust.expires_at < expires:
            expires = trust.expires_at
        token_user = user_id
        if trust is not None and trust.impersonation:
            token_user = trust.trustor_user_id
        payload = TokenPayload(
            user_id=token_user, methods=methods_out, expires_at=expires, issued_at=now,
            audit_ids=[new_audit_id()] + ([audit_chain] if audit_chain else []),
            project_id=scope_id if scope_type == "project" else None,
            domain_id=scope_id if scope_type == "domain" else None,
            system=scope_id if scope_type == "system" else None,
            application_credential_id=app_cred.id if app_cred else (
                parent.application_credential_id if parent else None),
            trust_id=trust.id if trust else None)
        try:
            ctx = await self._context(payload)
        except TokenInvalid:
            raise denied(f"the {payload.scope_key[0]} scope of user {user_id} holds no usable roles") from None
        if trust is not None and trust.remaining_uses is not None:
            await self._consume_trust_use(trust.id)
        token = self.codec.encode(payload)
        ctx.token = token
        return token, ctx

    async def _lookup_user(self, data: dict[str, Any]) -> m.User:
        if data.get("id"):
            user = await self.cached(m.User, str(data["id"]))
        elif data.get("name"):
            domain = data.get("domain")
            if not isinstance(domain, dict) or not (domain.get("id") or domain.get("name")):
                raise ValidationError("Expecting to find domain in user - a user name must be "
                                      "qualified by its domain id or name.")
            key = ("user-by-name", str(data["name"]), str(domain.get("id") or ""), str(domain.get("name") or ""))
            user = await self.memo(key, lambda: self._load_user_by_name(str(data["name"]), domain))
        else:
            raise ValidationError("Expecting to find id or name in user.")
        if user is None:
            raise denied(f"no such user {data.get('id') or data.get('name')!r}")
        domain_row = await self.cached(m.Domain, user.domain_id)
        if not user.enabled:
            raise denied(f"user {user.id} is disabled")
        if domain_row is None or not domain_row.enabled:
            raise denied(f"the domain of user {user.id} is disabled")
        return user

    async def _load_user_by_name(self, name: str, domain: dict[str, Any]) -> m.User | None:
        async with self.db.session() as s:
            if domain.get("id"):
                domain_id = str(domain["id"])
            else:
                domain_id = (await s.execute(select(m.Domain.id).where(
                    m.Domain.name == str(domain["name"])))).scalar() or ""
            return (await s.execute(select(m.User).where(m.User.domain_id == domain_id,
                                                         m.User.name == name))).scalar()

    async def _auth_password(self, data: dict[str, Any]) -> str:
        user_data = data.get("user")
        if not isinstance(user_data, dict):
            raise ValidationError("Expecting to find user in password.")
        password = user_data.get("password")
        if not isinstance(password, str):
            raise ValidationError("Expecting to find password in user.")
        user = await self._lookup_user(user_data)
        sc = self.cfg.identity.security_compliance
        options = user.options or {}
        lockout = sc.lockout_failure_attempts > 0 and not options.get("ignore_lockout_failure_attempts")
        now = utcnow()
        failures, last_failure = 0, None
        if lockout:  # the failure counters change without an identity change: read them fresh
            async with self.db.session() as s:
                failures, last_failure = (await s.execute(
                    select(m.User.failed_auth_count, m.User.last_failed_auth_at).where(m.User.id == user.id))).one()
            if failures >= sc.lockout_failure_attempts:
                until = (last_failure or now) + dt.timedelta(seconds=sc.lockout_duration)
                if until > now:
                    raise Unauthorized(f"The account is locked for user: {user.id}.")
        current = await self.current_password(user.id)
        if current is None or not await check_async(password, current.hash):
            if lockout:
                count = 0 if failures >= sc.lockout_failure_attempts else failures  # a past lockout restarts
                async with self.db.session() as s:
                    await s.execute(m.User.__table__.update().where(m.User.id == user.id).values(
                        failed_auth_count=count + 1, last_failed_auth_at=now))
            raise denied(f"wrong password for user {user.id}")
        if failures:
            async with self.db.session() as s:
                await s.execute(m.User.__table__.update().where(m.User.id == user.id).values(
                    failed_auth_count=0))
        if current.expires_at and current.expires_at <= now and not options.get("ignore_password_expiry"):
            raise Unauthorized(f"The password is expired and needs to be changed for user: {user.id}.")
        return user.id

    async def _auth_token(self, data: dict[str, Any]) -> tuple[TokenPayload, str]:
        token = data.get("id")
        if not isinstance(token, str) or not token:
            raise ValidationError("Expecting to find id in token.")
        try:
            ctx = await self.validate(token)
        except TokenInvalid as exc:  # Keystone answers 404 for a token it cannot find
            raise NotFound(f"Could not find token: {exc.message}") from None
        payload = self.decode(token)
        if payload.trust_id:
            raise Forbidden("A token created from a trust cannot be rescoped.")
        if payload.application_credential_id:
            raise Unauthorized("A token created with an application credential cannot be rescoped.")
        return payload, ctx.user_id

    async def _auth_app_cred(self, data: dict[str, Any]) -> m.ApplicationCredential:
        secret = data.get("secret")
        if not isinstance(secret, str):
            raise ValidationError("Expecting to find secret in application_credential.")
        async with self.db.session() as s:
            if data.get("id"):
                cred = await s.get(m.ApplicationCredential, str(data["id"]))
            elif data.get("name") and isinstance(data.get("user"), dict):
                user = await self._lookup_user(data["user"])
                cred = (await s.execute(select(m.ApplicationCredential).where(
                    m.ApplicationCredential.user_id == user.id,
                    m.ApplicationCredential.name == str(data["name"])))).scalar()
            else:
                raise ValidationError("Expecting to find id, or name and user, in application_credential.")
        if cred is None or not await check_async(secret, cred.secret_hash):
            raise denied("unknown application credential or wrong secret")
        if cred.expires_at and cred.expires_at <= utcnow():
            raise Unauthorized("The application credential has expired.")
        user = await self.find(m.User, cred.user_id)
        if user is None or not user.enabled:
            raise denied(f"the owner of application credential {cred.id} is disabled or gone")
        return cred

    async def _resolve_scope(self, user_id: str, scope: Any, app_cred: m.ApplicationCredential | None,
                             parent: TokenPayload | None) -> tuple[str, str | None, m.Trust | None]:
        if app_cred is not None:
            if scope not in (None, "unscoped"):
                raise Unauthorized("Application credentials cannot request a scope.")
            if app_cred.system:
                return "system", app_cred.system, None
            return "project", app_cred.project_id, None
        if scope == "unscoped":
            return "unscoped", None, None
        if scope is None:
            if parent is not None:
                kind, value = parent.scope_key
                return kind, value, None
            user = await self.cached(m.User, user_id)
            if user is not None and user.default_project_id:
                project = await self.cached(m.Project, user.default_project_id)
                if project is not None and project.enabled and await self.grants_for_user(
                        user_id, "project", project.id):
                    return "project", project.id, None
            return "unscoped", None, None
        kinds = [k for k in ("project", "domain", "system", "OS-TRUST:trust") if k in scope]
        if len(kinds) != 1:
            raise ValidationError("Exactly one of project, domain, system or OS-TRUST:trust must be "
                                  "given in scope.")
        kind = kinds[0]
        target = scope[kind]
        if not isinstance(target, dict):
            raise ValidationError(f"scope.{kind} must be an object.")
        if kind == "system":
            if target.get("all") is not True:
                raise ValidationError("Only the system scope {\"all\": true} is supported.")
            if not await self.grants_for_user(user_id, "system", SYSTEM):
                raise Unauthorized(f"User {user_id} has no access to the system.")
            return "system", "all", None
        if kind == "OS-TRUST:trust":
            trust = await self._trust_for_auth(user_id, str(target.get("id", "")))
            return "project", trust.project_id, trust
        row: Any
        if kind == "project":
            if target.get("id"):
                row = await self.cached(m.Project, str(target["id"]))
            elif target.get("name"):
                domain = target.get("domain") or {}
                if not isinstance(domain, dict) or not (domain.get("id") or domain.get("name")):
                    raise ValidationError("A project name in scope must be qualified by its domain.")
                key = ("project-by-name", str(target["name"]), str(domain.get("id") or ""),
                       str(domain.get("name") or ""))
                row = await self.memo(key, lambda: self._load_project_by_name(str(target["name"]), domain))
            else:
                raise ValidationError("scope.project needs an id or a name.")
        elif target.get("id"):
            row = await self.cached(m.Domain, str(target["id"]))
        elif target.get("name"):
            row = await self.memo(("domain-by-name", str(target["name"])),
                                  lambda: self._load_domain_by_name(str(target["name"])))
        else:
            raise ValidationError("scope.domain needs an id or a name.")
        if row is None or not row.enabled:
            raise Unauthorized(f"Could not find the {kind} to scope to, or it is disabled.")
        if kind == "project":
            pdomain = await self.cached(m.Domain, row.domain_id)
            if pdomain is None or not pdomain.enabled:
                raise Unauthorized("The project's domain is disabled.")
        if not await self.grants_for_user(user_id, kind, row.id):
            raise Unauthorized(f"User {user_id} has no access to {kind} {row.id}.")
        return kind, row.id, None

    async def _load_project_by_name(self, name: str, domain: dict[str, Any]) -> m.Project | None:
        async with self.db.session() as s:
            domain_id = domain.get("id") or (await s.execute(select(m.Domain.id).where(
                m.Domain.name == str(domain["name"])))).scalar()
            return (await s.execute(select(m.Project).where(
                m.Project.domain_id == domain_id, m.Project.name == name))).scalar()

    async def _load_domain_by_name(self, name: str) -> m.Domain | None:
        async with self.db.session() as s:
            return (await s.execute(select(m.Domain).where(m.Domain.name == name))).scalar()

    async def _trust_for_auth(self, user_id: str, trust_id: str) -> m.Trust:
        trust = await self.find(m.Trust, trust_id)
        if trust is None or trust.deleted_at is not None:
            raise NotFound(f"Could not find trust: {trust_id}.")
        if trust.trustee_user_id != user_id:
            raise Forbidden("The user is not the trustee of this trust.")
        if trust.expires_at and trust.expires_at <= utcnow():
            raise Unauthorized("The trust has expired.")
        if trust.remaining_uses is not None and trust.remaining_uses <= 0:
            raise Unauthorized("The trust has no remaining uses.")
        return trust

    async def _consume_trust_use(self, trust_id: str) -> None:
        async with self.db.session() as s:
            trust = await s.get(m.Trust, trust_id)
            if trust is not None and trust.remaining_uses is not None:
                trust.remaining_uses -= 1

    async def change_password(self, user_id: str, original: str, new: str) -> None:
        user = await self.find(m.User, user_id)
        if user is None:
            raise NotFound(f"Could not find user: {user_id}.")
        current = await self.current_password(user_id)
        if current is None or not await check_async(original, current.hash):
            raise Unauthorized("Invalid authentication: the original password is not correct.")
        sc = self.cfg.identity.security_compliance
        if sc.minimum_password_age and not (user.options or {}).get("ignore_password_expiry"):
            age = utcnow() - current.created_at
            if age < dt.timedelta(days=sc.minimum_password_age) and current.self_service:
                raise BadRequest(f"You cannot change your password at this time due to the minimum "
                                 f"password age. Once you change your password, it must be used for "
                                 f"{sc.minimum_password_age} day(s) before it can be changed.")
        await self.set_password(user, new, self_service=True)

    # -- the catalog ------------------------------------------------------------------------
    async def catalog(self) -> list[dict[str, Any]]:
        if self._catalog is None:
            gen = self.generation
            async with self.db.session() as s:
                services = (await s.execute(select(m.Service).where(m.Service.enabled.is_(True))
                                            .order_by(m.Service.type))).scalars().all()
                endpoints = (await s.execute(select(m.Endpoint).where(m.Endpoint.enabled.is_(True))
                                             .order_by(m.Endpoint.interface))).scalars().all()
            by_service: dict[str, list[dict[str, Any]]] = {}
            for ep in endpoints:
                by_service.setdefault(ep.service_id, []).append(
                    {"id": ep.id, "interface": ep.interface, "region": ep.region_id,
                     "region_id": ep.region_id, "url": ep.url})
            catalog = [{"id": svc.id, "type": svc.type, "name": (svc.extra or {}).get("name", ""),
                        "endpoints": by_service.get(svc.id, [])} for svc in services]
            if gen == self.generation:
                self._catalog = catalog
            return catalog
        return self._catalog
