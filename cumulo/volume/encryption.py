"""A volume type's encryption spec: the ``VolumeService`` half of Cinder's /types/{id}/encryption
(it inherits ``EncryptionMixin``).

The spec is kept as the type's ``encryption`` (provider, cipher, key size, control location), so
an operator can describe encrypted types as Cinder lets them.  Encrypting a volume needs a key
manager (Barbican's role), which this cloud does not run: a volume of an encrypted type is
refused in words at create, so no volume claims to be encrypted when it is not.  As in Cinder,
the spec of a type that volumes use cannot be created, changed or removed.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from cumulo.core.db import Database, utcnow
from cumulo.core.http.faults import BadRequest, NotFound
from cumulo.volume.models import Volume, VolumeType

CONTROL_LOCATIONS = ("front-end", "back-end")
FIELDS = ("provider", "cipher", "key_size", "control_location")


class EncryptionMixin:
    """VolumeService's encryption-spec methods (they use its database)."""

    db: Database

    async def _encryption_row(self, s: Any, type_id: str) -> VolumeType:
        row = await s.get(VolumeType, type_id)
        if row is None:
            raise NotFound(f"Volume type {type_id} could not be found.")
        return row

    async def encryption(self, type_id: str) -> dict[str, Any] | None:
        """The type's spec, or None when its volumes are not encrypted."""
        async with self.db.session() as s:
            row = await self._encryption_row(s, type_id)
            return dict(row.encryption) if row.encryption else None

    async def set_encryption(self, type_id: str, values: dict[str, Any], *, create: bool,
                             encryption_id: str | None = None) -> dict[str, Any]:
        """Create the spec (``create``; a type has one at most) or change the one named
        ``encryption_id``; refused while volumes of the type exist."""
        async with self.db.session() as s:
            row = await self._encryption_row(s, type_id)
            current = dict(row.encryption) if row.encryption else None
            if create and current is not None:
                raise BadRequest(f"Volume type encryption for type {type_id} already exists.")
            if not create and (current is None or current["encryption_id"] != encryption_id):
                raise NotFound(f"Volume type encryption for type {type_id} does not exist.")
            await self._refuse_in_use(s, type_id, "create" if create else "update")
            now = utcnow().strftime("%Y-%m-%dT%H:%M:%S.%f")
            spec = current or {"encryption_id": str(uuid.uuid4()), "provider": None, "cipher": None,
                               "key_size": None, "control_location": "front-end", "created_at": now,
                               "updated_at": None}
            spec.update({k: v for k, v in values.items() if k in FIELDS})
            if not create:
                spec["updated_at"] = now
            if not spec.get("provider"):
                raise BadRequest("Invalid input received: the encryption's provider is required.")
            row.encryption = spec
        return spec

    async def delete_encryption(self, type_id: str, encryption_id: str) -> None:
        async with self.db.session() as s:
            row = await self._encryption_row(s, type_id)
            if not row.encryption or row.encryption.get("encryption_id") != encryption_id:
                raise NotFound(f"Volume type encryption for type {type_id} does not exist.")
            await self._refuse_in_use(s, type_id, "delete")
            row.encryption = None

    @staticmethod
    async def _refuse_in_use(s: Any, type_id: str, verb: str) -> None:
        used = (await s.execute(select(Volume.id).where(Volume.volume_type_id == type_id,
                                                        Volume.deleted.is_(False)).limit(1))).scalar()
        if used is not None:
            raise BadRequest(f"Cannot {verb} encryption specs. Volume type in use.")
