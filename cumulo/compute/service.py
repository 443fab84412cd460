"""The compute service, so far: flavors, key pairs and quotas (the parts that need no host).

Quotas are unified limits of the ``compute`` service in identity: the Ops Guide's defaults are
registered at first start, ``os-quota-class-sets/default`` changes those defaults, and
``os-quota-sets/{project}`` writes per-project limits.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import delete, func, select

from cumulo.compute.models import Flavor, FlavorAccess, KeyPair, Server
from cumulo.core.config import Config
from cumulo.core.db import Database, IntegrityError, is_duplicate, new_id
from cumulo.core.http.faults import BadRequest, Conflict, NotFound
from cumulo.core.quota import create_within
from cumulo.identity.service import IdentityService

# The Operations Guide's flavors, plus two that fit the cumulo-tiny guest.
DEFAULT_FLAVORS = [
    ("1", "m1.tiny", 1, 512, 1), ("2", "m1.small", 1, 2048, 20), ("3", "m1.medium", 2, 4096, 40),
    ("4", "m1.large", 4, 8192, 80), ("5", "m1.xlarge", 8, 16384, 160),
    ("10", "cumulo.nano", 1, 128, 1), ("11", "cumulo.micro", 1, 256, 1),
]
# Nova's (and the Ops Guide's) default quotas
DEFAULT_QUOTAS = {"instances": 10, "cores": 20, "ram": 51200, "metadata_items": 128, "injected_files": 5,
                  "injected_file_content_bytes": 10240, "injected_file_path_bytes": 255, "key_pairs": 100,
                  "server_groups": 10, "server_group_members": 10}
# quota-set names -> unified limit resource names (Nova's unified-limits mapping)
LIMIT_NAMES = {"instances": "servers", "cores": "class:VCPU", "ram": "class:MEMORY_MB",
               "metadata_items": "server_metadata_items", "injected_files": "server_injected_files",
               "injected_file_content_bytes": "server_injected_file_content_bytes",
               "injected_file_path_bytes": "server_injected_file_path_bytes", "key_pairs": "server_key_pairs",
               "server_groups": "server_groups", "server_group_members": "server_group_members"}


@dataclass
class NewKey:
    row: KeyPair
    private_key: str | None


async def live_servers_named(db: Database, name: str) -> dict[str, str]:
    """{name: id} of a server called ``name`` that is not deleted, for tools beside the services
    (``cumulo network trace`` finds a server by its name)."""
    async with db.session() as s:
        return {n: sid for sid, n in (await s.execute(select(Server.id, Server.name).where(
            Server.name == name, Server.deleted_at.is_(None)))).all()}


def ssh_fingerprint(public_key: str) -> str:
    parts = public_key.strip().split()
    if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-")):
        raise BadRequest("Keypair data is invalid: not an OpenSSH public key (ssh-rsa, ssh-ed25519, ecdsa-...).")
    try:
        blob = base64.b64decode(parts[1], validate=True)
        serialization.load_ssh_public_key(public_key.strip().encode())
    except (binascii.Error, ValueError, TypeError):
        raise BadRequest("Keypair data is invalid: the key does not decode.") from None
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


def x509_fingerprint(pem: str) -> str:
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise BadRequest("Keypair data is invalid: not a PEM X.509 certificate.") from None
    digest = cert.fingerprint(hashes.SHA1()).hex()  # noqa: S303 (Nova's fingerprint format)
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


class ComputeService:
    def __init__(self, cfg: Config, db: Database, identity: IdentityService) -> None:
        self.cfg, self.db, self.identity = cfg, db, identity

    async def start(self) -> None:
        async with self.db.session() as s:
            if (await s.execute(select(func.count()).select_from(Flavor))).scalar() == 0:
                for fid, name, vcpus, ram, disk in DEFAULT_FLAVORS:
                    s.add(Flavor(id=fid, name=name, vcpus=vcpus, ram=ram, disk=disk, extra_specs={}))
        await self.identity.register_default_limits(
            "compute", {LIMIT_NAMES[name]: (value, f"Nova quota {name}") for name, value in DEFAULT_QUOTAS.items()})

    # -- flavors ----------------------------------------------------------------------------
    async def flavor(self, flavor_id: str, project_id: str | None, admin: bool) -> Flavor:
        async with self.db.session() as s:
            row = await s.get(Flavor, flavor_id)
            if row is not None and not row.is_public and not admin:
                allowed = await s.get(FlavorAccess, (flavor_id, project_id or ""))
                row = row if allowed else None
        if row is None:
            raise NotFound(f"Flavor {flavor_id} could not be found.")
        return row

    async def flavors(self, project_id: str | None, admin: bool, is_public: bool | None) -> list[Flavor]:
        async with self.db.session() as s:
            rows = list((await s.execute(select(Flavor).where(Flavor.disabled.is_(False)))).scalars())
            access = set((await s.execute(select(FlavorAccess.flavor_id).where(
                FlavorAccess.project_id == (project_id or "")))).scalars())
        if is_public is None:  # admins see all, others the public ones and those shared with them
            return [f for f in rows if admin or f.is_public or f.id in access]
        return [f for f in rows if f.is_public == is_public and (admin or f.is_public or f.id in access)]

    async def create_flavor(self, values: dict[str, Any]) -> Flavor:
        values.setdefault("id", new_id())
        async with self.db.session() as s:
            if await s.get(Flavor, values["id"]) is not None:
                raise Conflict(f"Flavor with ID {values['id']} already exists.")
            if (await s.execute(select(Flavor.id).where(Flavor.name == values["name"]))).first():
                raise Conflict(f"Flavor with name {values['name']} already exists.")
            row = Flavor(extra_specs={}, **values)
            s.add(row)
        return row

    async def update_flavor(self, flavor_id: str, values: dict[str, Any]) -> Flavor:
        async with self.db.session() as s:
            row = await s.get(Flavor, flavor_id)
            if row is None:
                raise NotFound(f"Flavor {flavor_id} could not be found.")
            for key, value in values.items():
                setattr(row, key, value)
        return row

    async def delete_flavor(self, flavor_id: str) -> None:
        async with self.db.session() as s:
            row = await s.get(Flavor, flavor_id)
            if row is None:
                raise NotFound(f"Flavor {flavor_id} could not be found.")
            await s.delete(row)
            await s.execute(delete(FlavorAccess).where(FlavorAccess.flavor_id == flavor_id))

    async def flavor_access(self, flavor_id: str) -> list[str]:
        async with self.db.session() as s:
            return list((await s.execute(select(FlavorAccess.project_id).where(
                FlavorAccess.flavor_id == flavor_id))).scalars())

    async def set_flavor_access(self, flavor: Flavor, project_id: str, add: bool) -> None:
        if flavor.is_public:
            raise Conflict(f"Flavor {flavor.id} is public: access lists are for private flavors.")
        async with self.db.session() as s:
            existing = await s.get(FlavorAccess, (flavor.id, project_id))
            if add:
                if existing is not None:
                    raise Conflict(f"Flavor access already exists for flavor {flavor.id} and project {project_id}.")
                s.add(FlavorAccess(flavor_id=flavor.id, project_id=project_id))
            else:
                if existing is None:
                    raise NotFound(f"Flavor access not found for flavor {flavor.id} and project {project_id}.")
                await s.delete(existing)

    # -- key pairs --------------------------------------------------------------------------
    async def keypairs(self, user_id: str) -> list[KeyPair]:
        async with self.db.session() as s:
            return list((await s.execute(select(KeyPair).where(KeyPair.user_id == user_id)
                                         .order_by(KeyPair.name))).scalars())

    async def keypair(self, user_id: str, name: str) -> KeyPair:
        async with self.db.session() as s:
            row = (await s.execute(select(KeyPair).where(KeyPair.user_id == user_id, KeyPair.name == name))).scalar()
        if row is None:
            raise NotFound(f"Keypair {name} not found for user {user_id}")
        return row

    async def create_keypair(self, user_id: str, project_id: str | None, name: str, key_type: str,
                             public_key: str | None) -> NewKey:
        private = None
        if public_key is None:
            public_key, private = self._generate(key_type)
        fingerprint = ssh_fingerprint(public_key) if key_type == "ssh" else x509_fingerprint(public_key)
        row = KeyPair(user_id=user_id, name=name, type=key_type, public_key=public_key.strip(),
                      fingerprint=fingerprint)

        async def insert() -> KeyPair:
            try:
                async with self.db.session() as s:
                    s.add(row)
            except IntegrityError as exc:
                if is_duplicate(exc):
                    raise Conflict(f"Key pair '{name}' already exists.") from None
                raise
            return row

        async def undo(created: KeyPair) -> None:
            async with self.db.session() as s:
                await s.execute(delete(KeyPair).where(KeyPair.id == created.id))

        await create_within(await self.quota(project_id, "key_pairs"), insert, lambda: self.key_pair_count(user_id),
                            undo, "key_pairs")
        return NewKey(row, private)

    @staticmethod
    def _generate(key_type: str) -> tuple[str, str]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption()).decode()
        if key_type == "ssh":
            public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                   serialization.PublicFormat.OpenSSH).decode()
            return public + " Generated-by-Cumulo", private
        name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "cumulo-keypair")])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now)
                .not_valid_after(now + dt.timedelta(days=3650)).sign(key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM).decode(), private

    async def delete_keypair(self, user_id: str, name: str) -> None:
        row = await self.keypair(user_id, name)
        async with self.db.session() as s:
            await s.execute(delete(KeyPair).where(KeyPair.id == row.id))

    # -- quotas -----------------------------------------------------------------------------
    async def quota(self, project_id: str | None, name: str) -> int | None:
        if not project_id:
            return None
        value = await self.identity.limit(project_id, "compute", LIMIT_NAMES[name])
        return None if value is None or value < 0 else value

    async def usage(self, project_id: str) -> dict[str, int]:
        """What the project's servers (those not deleted) take of the instances, cores and ram quotas."""
        # grouped by the flavor snapshot: a few rows however many servers the project has
        async with self.db.session() as s:
            rows = (await s.execute(select(Server.flavor, func.count()).where(
                Server.project_id == project_id, Server.deleted_at.is_(None)).group_by(Server.flavor))).all()
        return {"instances": sum(n for _, n in rows), "cores": sum(f["vcpus"] * n for f, n in rows),
                "ram": sum(f["ram"] * n for f, n in rows)}

    async def quotas(self, project_id: str | None) -> dict[str, int]:
        return {name: (await self.quota(project_id, name) if project_id else None) or DEFAULT_QUOTAS[name]
                for name in DEFAULT_QUOTAS}

    async def defaults(self) -> dict[str, int]:
        registered = await self.identity.registered_limits("compute")
        return {name: registered.get(LIMIT_NAMES[name], DEFAULT_QUOTAS[name]) for name in DEFAULT_QUOTAS}

    async def set_limits(self, project_id: str | None, values: dict[str, int]) -> None:
        """Write project limits (project_id) or registered defaults (None) for quota names."""
        await self.identity.set_limits("compute", project_id,
                                       {LIMIT_NAMES[name]: value for name, value in values.items()})

    async def reset_limits(self, project_id: str) -> None:
        await self.identity.delete_project_limits("compute", project_id)

    async def key_pair_count(self, user_id: str) -> int:
        async with self.db.session() as s:
            return (await s.execute(select(func.count()).select_from(KeyPair).where(
                KeyPair.user_id == user_id))).scalar() or 0
