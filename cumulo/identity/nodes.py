"""Joining a host to the cloud: the join tokens of ``cumulo node token create`` and the identity
API's extension ``POST /v3/OS-CUMULO/nodes/join`` that ``cumulo node join`` presents one to.

A token is ``<id>.<secret>``: the id names its row, the secret (32 random bytes) is checked against
the SHA-256 kept in the row with a constant-time compare.  The token carries no setting itself; the
join answers once (the row is marked used in the same UPDATE that checks it is unused and not
expired) with what a node needs that an operator would otherwise type: the bus URL with its
credentials, the bus prefix, the metadata secret, the controller's public host and ports, the
region.  The route needs no Keystone token (the join token is the credential, and the node has
no account): its authorization is the token's, so it has no policy rule.  Wrong, unknown or
malformed tokens get 401; a used or expired token, or roles the token does not allow, 403.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
from typing import Any

from sqlalchemy import update
from starlette.requests import Request
from starlette.responses import Response

from cumulo.core import logging as logmod
from cumulo.core.db import Database, utcnow
from cumulo.core.http.app import JSON, Router, json_body
from cumulo.core.http.faults import Conflict, Forbidden, Unauthorized, ValidationError
from cumulo.identity.node_models import NodeJoinToken

LOG = logging.getLogger("cumulo.identity.nodes")

ROLES = ("compute", "network", "volume")
JOIN_PATH = "/v3/OS-CUMULO/nodes/join"
MAX_TTL = 7 * 86400
_TOKEN = re.compile(r"^([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$")
HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
INVALID = "The join token is not valid: check it was copied whole, or make one with `cumulo node token create`."


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_roles(roles: Any) -> list[str]:
    """A list of known roles (from a list or a comma-separated string), in the canonical order."""
    if isinstance(roles, str):
        roles = [r.strip() for r in roles.split(",") if r.strip()]
    if not isinstance(roles, list) or not roles or len(roles) > len(ROLES) or \
            not all(isinstance(r, str) for r in roles):
        raise ValueError(f"roles: a list of one or more of {', '.join(ROLES)}")
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(f"unknown role {unknown[0][:32]!r}: the roles are {', '.join(ROLES)}")
    return [r for r in ROLES if r in roles]


async def create_token(db: Database, ttl: int, roles: list[str]) -> tuple[str, dt.datetime]:
    """A new join token (``<id>.<secret>``, shown once) valid for ``ttl`` seconds, and its expiry."""
    if not 60 <= ttl <= MAX_TTL:
        raise ValueError(f"--ttl: between 60 and {MAX_TTL} seconds")
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    expires = utcnow() + dt.timedelta(seconds=ttl)
    async with db.session() as s:
        s.add(NodeJoinToken(id=token_id, secret_hash=_hash(secret), roles=",".join(parse_roles(roles)),
                            expires_at=expires))
    return f"{token_id}.{secret}", expires


async def redeem(db: Database, token: str, host: str, roles: list[str]) -> NodeJoinToken:
    """Mark the token used by ``host``, or raise the fault that says why it cannot be."""
    m = _TOKEN.match(token)
    if m is None:
        raise Unauthorized(INVALID)
    token_id, secret = m.groups()
    logmod.add_secret(secret)
    async with db.session() as s:
        row = await s.get(NodeJoinToken, token_id)
        # compared even for an unknown id, so that the time taken does not tell ids apart
        expected = row.secret_hash if row is not None else _hash(secrets.token_urlsafe(32))
        if not hmac.compare_digest(expected, _hash(secret)) or row is None:
            raise Unauthorized(INVALID)
        now = utcnow()
        fix = "make a new one with `cumulo node token create` on a controller"
        if row.used_at is not None:
            raise Forbidden(f"The join token {token_id} was used already (by host {row.used_by} at "
                            f"{row.used_at:%Y-%m-%dT%H:%M:%SZ}): {fix}.")
        if row.expires_at <= now:
            raise Forbidden(f"The join token {token_id} expired at {row.expires_at:%Y-%m-%dT%H:%M:%SZ}: {fix}.")
        allowed = row.roles.split(",")
        refused = [r for r in roles if r not in allowed]
        if refused:
            raise Forbidden(f"The join token {token_id} allows the roles {', '.join(allowed)}, not "
                            f"{', '.join(refused)}: {fix} --roles {','.join(roles)}.")
        done = await s.execute(update(NodeJoinToken).where(
            NodeJoinToken.id == token_id, NodeJoinToken.used_at.is_(None), NodeJoinToken.expires_at > now).values(
            used_at=now, used_by=host))
        if done.rowcount != 1:  # another join took it between the read and the update
            raise Forbidden(f"The join token {token_id} was used already: {fix}.")
    return row


def metadata_secret(cfg: Any) -> str:
    if cfg.compute.metadata_secret:
        return str(cfg.compute.metadata_secret)
    path = cfg.state_path / "metadata-secret"
    return path.read_text().strip() if path.exists() else ""


def node_settings(cfg: Any, host: str, roles: list[str]) -> dict[str, Any]:
    """What a node of ``roles`` needs to run its agents against this cloud."""
    return {
        "host": host, "roles": roles, "region": cfg.api.region, "public_host": cfg.public_host,
        "bus": {"url": cfg.bus.url, "prefix": cfg.bus.prefix, "rpc_timeout": cfg.bus.rpc_timeout},
        "metadata_secret": metadata_secret(cfg),
        "ports": {"identity": cfg.identity.port, "image": cfg.image.port, "compute": cfg.compute.port,
                  "metadata": cfg.compute.metadata_port, "network": cfg.network.port, "volume": cfg.volume.port,
                  "placement": cfg.placement.port},
        "compute": {"report_interval": cfg.compute.report_interval, "service_down_time": cfg.compute.service_down_time,
                    "volume_transport": cfg.compute.volume_transport},
        "network": {"namespace_prefix": cfg.network.namespace_prefix,
                    "reconcile_interval": cfg.network.reconcile_interval},
        "volume": {"report_interval": cfg.volume.report_interval, "service_down_time": cfg.volume.service_down_time,
                   "backups_path": cfg.volume.backups_path},
    }


def router(api: Any) -> Router:
    r = Router()
    svc = api.svc

    @r.post(JOIN_PATH, auth=False)
    async def join(request: Request) -> Response:
        body = await json_body(request)
        spec = body.get("join") if isinstance(body, dict) else None
        if not isinstance(spec, dict) or not isinstance(spec.get("token"), str) or len(spec["token"]) > 128:
            raise ValidationError('Expecting {"join": {"token": "ID.SECRET", "host": "NAME", "roles": [...]}}.')
        host = spec.get("host")
        if not isinstance(host, str) or not HOST_NAME.match(host):
            raise ValidationError("host: a name of 1-63 letters, digits, '.', '_' or '-'.")
        try:
            roles = parse_roles(spec.get("roles"))
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        cfg = svc.cfg
        if cfg.bus.url.startswith("memory:"):
            raise Conflict("This cloud's bus is memory:// (a single machine): set [bus] url to RabbitMQ "
                           "(amqp://...) on the controllers, restart them, then join nodes.")
        row = await redeem(svc.db, spec["token"], host, roles)
        LOG.info("host %s joined with join token %s (roles %s)", host, row.id, ",".join(roles))
        return JSON({"node": node_settings(cfg, host, roles)})

    return r
