"""QoS specs and a volume type's project access: the ``VolumeService`` half of Cinder's
/qos-specs and os-volume-type-access (it inherits ``QosMixin``).

A QoS specs is a named set of limits with a consumer: ``back-end`` (Cinder's default: the storage
applies them; the file driver has nothing to apply), ``front-end`` (the compute node does) or
``both``.  A volume type points at one (``volume_type.qos_specs_id``); every attachment of a
volume of that type then carries the front-end limits in ``connection_info["data"]["qos_specs"]``
(``front_end_specs``), as Cinder's volume manager puts them there, and compute's QEMU wraps the
volume in a throttle node (``cumulo/compute/virt/qemu/volumes.py``).  The limits take effect at
the next attach: one already plugged in keeps what it had, as with Nova and libvirt.

The limits QEMU applies are checked here, so the guest path never meets a value it cannot use:
each must be a non-negative integer (0 means no limit).  Other keys (a back-end's own) are kept
as given.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from cumulo.core.db import Database, IntegrityError, is_duplicate
from cumulo.core.http.faults import BadRequest, Conflict, NotFound
from cumulo.core.http.paging import ListQuery, apply
from cumulo.volume.models import Volume, VolumeType, VolumeTypeAccess
from cumulo.volume.qos_models import QosSpecs

CONSUMERS = ("front-end", "back-end", "both")
DEFAULT_CONSUMER = "back-end"
# the limits a front end applies (Nova's libvirt driver's names), each per second
_RATES = ("total_bytes_sec", "read_bytes_sec", "write_bytes_sec", "total_iops_sec", "read_iops_sec", "write_iops_sec")
# and their bursts, burst lengths (seconds), per-GiB forms (Cinder multiplies them by the size)
LIMIT_KEYS = frozenset({*_RATES, *(f"{k}_max" for k in _RATES), *(f"{k}_max_length" for k in _RATES),
                        *(f"{k}_per_gb" for k in _RATES), *(f"{k}_per_gb_min" for k in _RATES), "size_iops_sec"})
LIMIT_MAX = 10**15  # QEMU's largest throttle value
QOS_SORT_KEYS = {"id", "name", "consumer", "created_at", "updated_at"}
_DIGITS = re.compile(r"^[0-9]{1,16}$")


@dataclass(frozen=True)
class QosSpecsInfo:
    id: str
    name: str
    consumer: str
    specs: dict[str, str]


def _info(row: QosSpecs) -> QosSpecsInfo:
    return QosSpecsInfo(row.id, row.name, row.consumer, dict(row.specs or {}))


def checked_specs(specs: dict[str, Any]) -> tuple[str | None, dict[str, str]]:
    """(the consumer if named, the other keys as strings); 400 for an unknown consumer or a limit
    that is not a non-negative integer."""
    out: dict[str, str] = {}
    consumer = None
    for key, value in specs.items():
        if key == "consumer":
            if value not in CONSUMERS:
                raise BadRequest(f"Invalid qos specs: consumer {value!r} is not one of {', '.join(CONSUMERS)}.")
            consumer = str(value)
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise BadRequest(f"Invalid qos specs: the value of {key!r} must be a string.")
        text = str(value).strip()
        if key in LIMIT_KEYS and not (_DIGITS.match(text) and int(text) <= LIMIT_MAX):
            raise BadRequest(f"Invalid qos specs: {key} must be a non-negative integer (at most {LIMIT_MAX}), "
                             f"not {value!r}.")
        out[key] = text
    return consumer, out


def applied_limits(specs: dict[str, str], size_gb: int) -> dict[str, str]:
    """The front end's limits for a volume of ``size_gb``: the per-GiB forms multiplied by the
    size (at least their ``_per_gb_min``, at most the key's ``_max``), as Cinder computes them for
    the connection info; other keys as they are."""
    out = dict(specs)
    for key in _RATES:
        per_gb = out.pop(f"{key}_per_gb", None)
        minimum = out.pop(f"{key}_per_gb_min", None)
        if per_gb is None:
            continue
        value = max(int(minimum or 0), int(per_gb) * size_gb)
        if f"{key}_max" in out:
            value = min(value, int(out.pop(f"{key}_max")))
        out[key] = str(value)
    return out


async def front_end_specs(s: Any, volume: Volume) -> dict[str, str] | None:
    """What the compute node must apply to ``volume`` (its type's specs when their consumer is
    front-end or both), or None, within session ``s``."""
    if volume.volume_type_id is None:
        return None
    qos_id = (await s.execute(select(VolumeType.qos_specs_id).where(
        VolumeType.id == volume.volume_type_id))).scalar()
    row = await s.get(QosSpecs, qos_id) if qos_id else None
    if row is None or row.consumer not in ("front-end", "both"):
        return None
    return applied_limits(dict(row.specs or {}), int(volume.size))


class QosMixin:
    """VolumeService's QoS specs and type access methods (it inherits them; they use its database).
    Every one is an admin's (the API enforces Cinder's rules)."""

    db: Database

    # -- QoS specs --------------------------------------------------------------------------------
    async def qos_specs_list(self, q: ListQuery, filters: dict[str, str] | None = None) -> list[QosSpecsInfo]:
        async with self.db.session() as s:
            marker = await s.get(QosSpecs, q.marker) if q.marker else None
            if q.marker and marker is None:
                raise BadRequest(f"Marker {q.marker} could not be found.")
            stmt = select(QosSpecs)
            for key, value in (filters or {}).items():
                stmt = stmt.where(getattr(QosSpecs, key) == value)
            rows = (await s.execute(apply(stmt, QosSpecs, q, marker))).scalars().all()
        return [_info(r) for r in rows]

    async def qos_specs(self, qos_id: str) -> QosSpecsInfo:
        async with self.db.session() as s:
            return _info(await self._qos_row(s, qos_id))

    async def create_qos_specs(self, name: str, specs: dict[str, Any]) -> QosSpecsInfo:
        """A new QoS specs; ``specs`` may name its ``consumer`` (back-end when not); 409 for a name
        that is taken."""
        consumer, keys = checked_specs(specs)
        row = QosSpecs(id=str(uuid.uuid4()), name=name, consumer=consumer or DEFAULT_CONSUMER, specs=keys)
        try:
            async with self.db.session() as s:
                s.add(row)
        except IntegrityError as exc:
            if is_duplicate(exc):
                raise Conflict(f"QoS Specs {name} already exists.") from None
            raise
        return _info(row)

    async def set_qos_keys(self, qos_id: str, specs: dict[str, Any]) -> QosSpecsInfo:
        """Set keys (and the consumer) of a QoS specs; the others stay."""
        consumer, keys = checked_specs(specs)
        async with self.db.session() as s:
            row = await self._qos_row(s, qos_id)
            row.specs = {**(row.specs or {}), **keys}
            if consumer:
                row.consumer = consumer
            return _info(row)

    async def delete_qos_keys(self, qos_id: str, keys: list[str]) -> None:
        """Remove keys; 404 for a key it does not have (and none is removed then)."""
        async with self.db.session() as s:
            row = await self._qos_row(s, qos_id)
            specs = dict(row.specs or {})
            for key in keys:
                if key not in specs:
                    raise NotFound(f"QoS spec {qos_id} has no spec with key {key}.")
                del specs[key]
            row.specs = specs

    async def delete_qos_specs(self, qos_id: str, force: bool = False) -> None:
        """Delete a QoS specs; one still associated with a type only with ``force`` (which
        disassociates it first), else 400 as in Cinder."""
        async with self.db.session() as s:
            row = await self._qos_row(s, qos_id)
            used = (await s.execute(select(func.count()).select_from(VolumeType).where(
                VolumeType.qos_specs_id == qos_id))).scalar()
            if used and not force:
                raise BadRequest(f"Qos specs still in use: QoS Specs {qos_id} is associated with {used} volume "
                                 "types (disassociate them, or delete with force).")
            await s.execute(update(VolumeType).where(VolumeType.qos_specs_id == qos_id).values(qos_specs_id=None))
            await s.delete(row)

    async def qos_associations(self, qos_id: str) -> list[dict[str, str]]:
        """The volume types the QoS specs is associated with, as Cinder lists them."""
        async with self.db.session() as s:
            await self._qos_row(s, qos_id)
            rows = (await s.execute(select(VolumeType).where(VolumeType.qos_specs_id == qos_id)
                                    .order_by(VolumeType.name))).scalars().all()
        return [{"association_type": "volume_type", "name": r.name, "id": r.id} for r in rows]

    async def associate_qos(self, qos_id: str, type_id: str) -> None:
        """Point the type at the QoS specs; 400 when it already has other specs (disassociate them
        first), nothing when it has these."""
        async with self.db.session() as s:
            await self._qos_row(s, qos_id)
            vtype = await self._type_row(s, type_id)
            if vtype.qos_specs_id not in (None, qos_id):
                raise BadRequest(f"Invalid volume type: Type {type_id} is already associated with another qos "
                                 f"specs: {vtype.qos_specs_id}")
            vtype.qos_specs_id = qos_id

    async def disassociate_qos(self, qos_id: str, type_id: str) -> None:
        async with self.db.session() as s:
            await self._qos_row(s, qos_id)
            vtype = await self._type_row(s, type_id)
            if vtype.qos_specs_id == qos_id:
                vtype.qos_specs_id = None

    async def disassociate_all_qos(self, qos_id: str) -> None:
        async with self.db.session() as s:
            await self._qos_row(s, qos_id)
            await s.execute(update(VolumeType).where(VolumeType.qos_specs_id == qos_id).values(qos_specs_id=None))

    # -- volume type access -----------------------------------------------------------------------
    async def type_access(self, type_id: str) -> list[str]:
        """The projects a private type is shared with; 404 for a public one (it has no list)."""
        async with self.db.session() as s:
            vtype = await self._type_row(s, type_id)
            if vtype.is_public:
                raise NotFound("Access list not available for public volume types.")
            return list((await s.execute(select(VolumeTypeAccess.project_id).where(
                VolumeTypeAccess.volume_type_id == type_id).order_by(VolumeTypeAccess.id))).scalars())

    async def add_type_access(self, type_id: str, project_id: str) -> None:
        """Share a private type with a project: 400 for a public type, 409 when it already is."""
        try:
            async with self.db.session() as s:
                vtype = await self._type_row(s, type_id)
                if vtype.is_public:
                    raise BadRequest("Invalid volume type: Type access modification is not applicable to public "
                                     "volume type.")
                s.add(VolumeTypeAccess(volume_type_id=type_id, project_id=project_id))
        except IntegrityError as exc:
            if is_duplicate(exc):
                raise Conflict(f"Volume type access for {type_id} / {project_id} combination already "
                               "exists.") from None
            raise

    async def remove_type_access(self, type_id: str, project_id: str) -> None:
        """Stop sharing a private type with a project: 404 when it was not shared with it."""
        async with self.db.session() as s:
            vtype = await self._type_row(s, type_id)
            if vtype.is_public:
                raise BadRequest("Invalid volume type: Type access modification is not applicable to public "
                                 "volume type.")
            row = (await s.execute(select(VolumeTypeAccess).where(
                VolumeTypeAccess.volume_type_id == type_id, VolumeTypeAccess.project_id == project_id))).scalar()
            if row is None:
                raise NotFound(f"Volume type access not found for {type_id} / {project_id} combination.")
            await s.delete(row)

    # -- rows -------------------------------------------------------------------------------------
    @staticmethod
    async def _qos_row(s: Any, qos_id: str) -> QosSpecs:
        row = await s.get(QosSpecs, qos_id)
        if row is None:
            raise NotFound(f"No such QoS spec {qos_id}.")
        return row  # type: ignore[no-any-return]

    @staticmethod
    async def _type_row(s: Any, type_id: str) -> VolumeType:
        row = await s.get(VolumeType, type_id)
        if row is None:
            raise NotFound(f"Volume type {type_id} could not be found.")
        return row  # type: ignore[no-any-return]
