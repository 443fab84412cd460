"""Placement: what each resource provider has (inventories), what consumers hold (allocations),
and which providers can take a request (allocation candidates).

Capacity of a class on a provider is ``(total - reserved) * allocation_ratio``; a request fits when
usage + amount stays within it and the amount respects min_unit, max_unit and step_size.
No double booking: an allocation write first bumps the generation of every provider it touches
(taking their row locks, in a fixed order), then reads usage and checks capacity inside the same
transaction, so concurrent writers to a provider are serialised.  Inventory and trait writes
carry the generation the caller saw and fail with 409 if another writer got there first.
"""

from __future__ import annotations

import asyncio
import uuid as uuidlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, literal_column, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cumulo.core.db import Database, is_duplicate
from cumulo.core.http.faults import BadRequest, Conflict, NotFound
from cumulo.placement.models import (
    Allocation,
    Consumer,
    CustomName,
    Inventory,
    ProviderAggregate,
    ProviderTrait,
    ResourceProvider,
)

STANDARD_CLASSES = (
    "VCPU", "MEMORY_MB", "DISK_GB", "PCI_DEVICE", "SRIOV_NET_VF", "NUMA_SOCKET", "NUMA_CORE", "NUMA_THREAD",
    "NUMA_MEMORY_MB", "IPV4_ADDRESS", "VGPU", "VGPU_DISPLAY_HEAD", "NET_BW_EGR_KILOBIT_PER_SEC",
    "NET_BW_IGR_KILOBIT_PER_SEC", "PCPU", "MEM_ENCRYPTION_CONTEXT", "FPGA", "PGPU",
    "NET_PACKET_RATE_KILOPACKET_PER_SEC", "NET_PACKET_RATE_EGR_KILOPACKET_PER_SEC",
    "NET_PACKET_RATE_IGR_KILOPACKET_PER_SEC")
STANDARD_TRAITS = (
    "COMPUTE_NODE", "COMPUTE_STATUS_DISABLED", "COMPUTE_ARCH_X86_64", "HW_ARCH_X86_64", "COMPUTE_VOLUME_ATTACH",
    "COMPUTE_VOLUME_EXTEND", "COMPUTE_VOLUME_MULTI_ATTACH", "COMPUTE_NET_ATTACH_INTERFACE",
    "COMPUTE_NET_VIF_MODEL_VIRTIO", "COMPUTE_DEVICE_TAGGING", "COMPUTE_TRUSTED_CERTS",
    "COMPUTE_IMAGE_TYPE_QCOW2", "COMPUTE_IMAGE_TYPE_RAW", "COMPUTE_IMAGE_TYPE_AKI", "COMPUTE_IMAGE_TYPE_ARI",
    "COMPUTE_IMAGE_TYPE_ISO", "COMPUTE_GRAPHICS_MODEL_NONE", "COMPUTE_RESCUE_BFV", "COMPUTE_ACCELERATORS",
    "HW_CPU_X86_SSE", "HW_CPU_X86_SSE2", "HW_CPU_X86_SSE42", "HW_CPU_X86_AVX", "HW_CPU_X86_AVX2",
    "HW_CPU_HYPERTHREADING", "STORAGE_DISK_SSD", "STORAGE_DISK_HDD", "MISC_SHARES_VIA_AGGREGATE",
    "HW_NIC_SRIOV", "CUSTOM_CUMULO_FAKE")
# What a compute node reports by default (Nova's initial allocation ratios); the Placement API
# itself defaults every class to 1.0.
NODE_ALLOCATION_RATIOS = {"VCPU": 16.0, "MEMORY_MB": 1.5, "DISK_GB": 1.0}
MAX_INT = 2**31 - 1
RETRIES = 10


@dataclass(frozen=True)
class Provider:
    """A resource provider as callers see it (plain data: it can cross a process boundary)."""

    uuid: str
    name: str
    generation: int
    parent_uuid: str | None
    root_uuid: str

    @classmethod
    def of(cls, row: ResourceProvider) -> Provider:
        return cls(row.uuid, row.name, row.generation, row.parent_uuid, row.root_uuid)


@dataclass
class Candidate:
    provider: Provider
    capacity: dict[str, int]
    used: dict[str, int]
    traits: list[str] = field(default_factory=list)


def capacity(inv: Inventory) -> int:
    return int((inv.total - inv.reserved) * inv.allocation_ratio)


def check_amount(inv: Inventory, amount: int, provider: str) -> None:
    if amount < inv.min_unit or amount > inv.max_unit or amount % inv.step_size:
        raise BadRequest(f"Unable to allocate inventory: {amount} {inv.resource_class} on {provider} violates "
                         f"min_unit={inv.min_unit}, max_unit={inv.max_unit} or step_size={inv.step_size}.")


class PlacementService:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- names ------------------------------------------------------------------------------
    async def custom(self, kind: str) -> list[str]:
        async with self.db.session() as s:
            return list((await s.execute(select(CustomName.name).where(CustomName.kind == kind))).scalars())

    async def resource_classes(self) -> list[str]:
        return [*STANDARD_CLASSES, *sorted(await self.custom("class"))]

    async def traits(self) -> list[str]:
        return sorted([*STANDARD_TRAITS, *await self.custom("trait")])

    async def add_custom(self, kind: str, name: str) -> bool:
        """True when created, False when it existed."""
        if not name.startswith("CUSTOM_") or not name[7:] or not all(c.isupper() or c.isdigit() or c == "_"
                                                                     for c in name):
            raise BadRequest(f"Invalid {kind} name {name!r}: CUSTOM_ followed by upper-case letters, digits, _.")
        async with self.db.session() as s:
            if await s.get(CustomName, (kind, name)) is not None:
                return False
            s.add(CustomName(kind=kind, name=name))
        return True

    async def delete_custom(self, kind: str, name: str) -> None:
        async with self.db.session() as s:
            row = await s.get(CustomName, (kind, name))
            if row is None:
                raise NotFound(f"No such {kind} {name}.")
            if kind == "class" and (await s.execute(select(Inventory).where(
                    Inventory.resource_class == name).limit(1))).first():
                raise Conflict(f"Resource class {name} is in use in inventory.")
            if kind == "trait" and (await s.execute(select(ProviderTrait).where(
                    ProviderTrait.trait == name).limit(1))).first():
                raise Conflict(f"The trait {name} is in use by a resource provider.")
            await s.delete(row)

    async def known_class(self, name: str) -> None:
        if name not in STANDARD_CLASSES and name not in await self.custom("class"):
            raise BadRequest(f"Unknown resource class in inventory or request: {name}.")

    # -- providers --------------------------------------------------------------------------
    @staticmethod
    async def _provider_row(s: AsyncSession, uuid: str) -> ResourceProvider:
        row = await s.get(ResourceProvider, uuid)
        if row is None:
            raise NotFound(f"No resource provider with uuid {uuid} found")
        return row

    async def provider(self, uuid: str) -> Provider:
        async with self.db.session() as s:
            return Provider.of(await self._provider_row(s, uuid))

    async def create_provider(self, name: str, uuid: str | None, parent: str | None) -> Provider:
        uuid = uuid or str(uuidlib.uuid4())
        async with self.db.session() as s:
            root = uuid
            if parent:
                parent_row = await s.get(ResourceProvider, parent)
                if parent_row is None:
                    raise BadRequest(f"The parent resource provider {parent} does not exist.")
                root = parent_row.root_uuid
            if await s.get(ResourceProvider, uuid) is not None:
                raise Conflict(f"Conflicting resource provider uuid: {uuid} already exists.")
            if (await s.execute(select(ResourceProvider.uuid).where(ResourceProvider.name == name))).first():
                raise Conflict(f"Conflicting resource provider name: {name} already exists.")
            row = ResourceProvider(uuid=uuid, name=name, parent_uuid=parent, root_uuid=root, generation=0)
            s.add(row)
        return Provider.of(row)

    async def update_provider(self, uuid: str, name: str, parent: str | None) -> Provider:
        try:
            async with self.db.session() as s:
                row = await self._provider_row(s, uuid)
                if parent != row.parent_uuid:
                    if row.parent_uuid is not None and parent != row.parent_uuid:
                        raise BadRequest("Re-parenting a provider is not supported; un-parenting is not allowed.")
                    parent_row = await s.get(ResourceProvider, parent) if parent else None
                    if parent and parent_row is None:
                        raise BadRequest(f"The parent resource provider {parent} does not exist.")
                    row.parent_uuid = parent
                    row.root_uuid = parent_row.root_uuid if parent_row else uuid
                row.name = name
                row.generation += 1
        except IntegrityError as exc:
            if not is_duplicate(exc):
                raise
            raise Conflict(f"Conflicting resource provider name: {name} already exists.") from None
        return Provider.of(row)

    async def delete_provider(self, uuid: str) -> None:
        async with self.db.session() as s:
            row = await self._provider_row(s, uuid)
            if (await s.execute(select(Allocation.id).where(Allocation.provider_uuid == uuid).limit(1))).first():
                raise Conflict(f"Unable to delete resource provider {uuid}: it has allocations.")
            if (await s.execute(select(ResourceProvider.uuid).where(
                    ResourceProvider.parent_uuid == uuid).limit(1))).first():
                raise Conflict(f"Unable to delete parent resource provider {uuid}: it has child providers.")
            for model in (Inventory, ProviderTrait, ProviderAggregate):
                await s.execute(delete(model).where(model.provider_uuid == uuid))
            await s.delete(row)

    async def providers(self, filters: dict[str, Any]) -> list[Provider]:
        stmt = select(ResourceProvider).order_by(ResourceProvider.name)
        if filters.get("name"):
            stmt = stmt.where(ResourceProvider.name == filters["name"])
        if filters.get("uuid"):
            stmt = stmt.where(ResourceProvider.uuid == filters["uuid"])
        if filters.get("in_tree"):
            tree = await self.provider(filters["in_tree"])
            stmt = stmt.where(ResourceProvider.root_uuid == tree.root_uuid)
        async with self.db.session() as s:
            rows = [Provider.of(row) for row in (await s.execute(stmt)).scalars()]
        if filters.get("member_of"):
            rows = [r for r in rows if set(await self.aggregates(r.uuid)) & set(filters["member_of"])]
        if filters.get("required"):
            rows = [r for r in rows if self._traits_ok(set(await self.provider_traits(r.uuid)), filters["required"])]
        if filters.get("resources"):
            fitting = {c.provider.uuid for c in await self.fits(filters["resources"], [r.uuid for r in rows])}
            rows = [r for r in rows if r.uuid in fitting]
        return rows

    @staticmethod
    def _traits_ok(have: set[str], required: list[str]) -> bool:
        for trait in required:
            if trait.startswith("!"):
                if trait[1:] in have:
                    return False
            elif trait.startswith("in:"):
                if not set(trait[3:].split(",")) & have:
                    return False
            elif trait not in have:
                return False
        return True

    # -- inventories ------------------------------------------------------------------------
    async def inventories(self, uuid: str) -> tuple[Provider, list[Inventory]]:
        async with self.db.session() as s:
            provider = Provider.of(await self._provider_row(s, uuid))
            rows = list((await s.execute(select(Inventory).where(Inventory.provider_uuid == uuid))).scalars())
        return provider, rows

    async def bump(self, s: AsyncSession, uuid: str, generation: int) -> int:
        result = await s.execute(update(ResourceProvider).where(
            ResourceProvider.uuid == uuid, ResourceProvider.generation == generation)
            .values(generation=generation + 1))
        if result.rowcount != 1:
            raise Conflict(f"resource provider generation conflict: the provider {uuid} changed since generation "
                           f"{generation}; fetch it again and retry.", kind="placement.concurrent_update")
        return generation + 1

    async def set_inventories(self, uuid: str, generation: int, inventories: dict[str, dict[str, Any]],
                              replace: bool = True) -> int:
        for rc in inventories:
            await self.known_class(rc)
        async with self.db.session() as s:
            await self._provider_row(s, uuid)
            new_generation = await self.bump(s, uuid, generation)
            current = {i.resource_class: i for i in (await s.execute(
                select(Inventory).where(Inventory.provider_uuid == uuid))).scalars()}
            used = await self._usage(s, [uuid])
            targets = dict(inventories) if replace else {**{k: None for k in current}, **inventories}
            removed = set(current) - set(targets) if replace else set()
            for rc in removed:
                if used.get((uuid, rc)):
                    raise Conflict(f"Inventory for {rc} on resource provider {uuid} in use.",
                                   kind="placement.inventory.inuse")
                await s.delete(current[rc])
            for rc, values in targets.items():
                if values is None:
                    continue
                inv = current.get(rc) or Inventory(provider_uuid=uuid, resource_class=rc)
                inv.total = values["total"]
                inv.reserved = values.get("reserved", 0)
                inv.min_unit = values.get("min_unit", 1)
                inv.max_unit = values.get("max_unit", MAX_INT)
                inv.step_size = values.get("step_size", 1)
                inv.allocation_ratio = values.get("allocation_ratio", 1.0)
                if inv.reserved > inv.total or inv.min_unit > inv.max_unit:
                    raise BadRequest(f"Unable to update inventory for {rc}: reserved must be <= total and "
                                     "min_unit <= max_unit.")
                if used.get((uuid, rc), 0) > capacity(inv):
                    raise Conflict(f"Unable to update inventory for {rc} on {uuid}: capacity would be below "
                                   f"usage {used[(uuid, rc)]}.", kind="placement.inventory.inuse")
                if rc not in current:
                    s.add(inv)
        return new_generation

    async def delete_inventory(self, uuid: str, generation: int, rc: str | None) -> int:
        _, rows = await self.inventories(uuid)
        keep = {i.resource_class: self._inv_dict(i) for i in rows if rc is not None and i.resource_class != rc}
        if rc is not None and rc not in {i.resource_class for i in rows}:
            raise NotFound(f"No inventory of class {rc} found for resource provider {uuid}.")
        return await self.set_inventories(uuid, generation, keep)

    @staticmethod
    def _inv_dict(i: Inventory) -> dict[str, Any]:
        return {"total": i.total, "reserved": i.reserved, "min_unit": i.min_unit, "max_unit": i.max_unit,
                "step_size": i.step_size, "allocation_ratio": i.allocation_ratio}

    # -- traits and aggregates --------------------------------------------------------------
    async def provider_traits(self, uuid: str) -> list[str]:
        async with self.db.session() as s:
            return sorted((await s.execute(select(ProviderTrait.trait).where(
                ProviderTrait.provider_uuid == uuid))).scalars())

    async def set_provider_traits(self, uuid: str, generation: int, traits: list[str]) -> int:
        known = set(await self.traits())
        unknown = [t for t in traits if t not in known]
        if unknown:
            raise BadRequest(f"No such trait(s): {', '.join(unknown)}.")
        async with self.db.session() as s:
            await self._provider_row(s, uuid)
            new_generation = await self.bump(s, uuid, generation)
            await s.execute(delete(ProviderTrait).where(ProviderTrait.provider_uuid == uuid))
            for trait in sorted(set(traits)):
                s.add(ProviderTrait(provider_uuid=uuid, trait=trait))
        return new_generation

    async def aggregates(self, uuid: str) -> list[str]:
        async with self.db.session() as s:
            return sorted((await s.execute(select(ProviderAggregate.aggregate_uuid).where(
                ProviderAggregate.provider_uuid == uuid))).scalars())

    async def set_aggregates(self, uuid: str, generation: int | None, aggregates: list[str]) -> int:
        async with self.db.session() as s:
            provider = await self._provider_row(s, uuid)
            new_generation = await self.bump(s, uuid, provider.generation if generation is None else generation)
            await s.execute(delete(ProviderAggregate).where(ProviderAggregate.provider_uuid == uuid))
            for agg in sorted(set(aggregates)):
                s.add(ProviderAggregate(provider_uuid=uuid, aggregate_uuid=agg))
        return new_generation

    # -- usage and allocations --------------------------------------------------------------
    @staticmethod
    async def _usage(s: AsyncSession, providers: list[str], exclude_consumer: str | None = None
                     ) -> dict[tuple[str, str], int]:
        stmt = select(Allocation.provider_uuid, Allocation.resource_class, func.sum(Allocation.used)).where(
            Allocation.provider_uuid.in_(providers)).group_by(Allocation.provider_uuid, Allocation.resource_class)
        if exclude_consumer:
            stmt = stmt.where(Allocation.consumer_uuid != exclude_consumer)
        return {(p, rc): int(total) for p, rc, total in (await s.execute(stmt)).all()}

    async def usages(self, uuid: str) -> tuple[Provider, dict[str, int]]:
        async with self.db.session() as s:
            provider = Provider.of(await self._provider_row(s, uuid))
            used = await self._usage(s, [uuid])
            classes = (await s.execute(select(Inventory.resource_class).where(
                Inventory.provider_uuid == uuid))).scalars()
        out = {rc: 0 for rc in classes}
        out.update({rc: n for (_, rc), n in used.items()})
        return provider, out

    async def free(self) -> dict[str, dict[str, int]]:
        """What every provider has left of each class it offers, in two queries (the scheduler's view)."""
        async with self.db.session() as s:
            inventories = list((await s.execute(select(Inventory))).scalars())
            used = await self._usage(s, sorted({i.provider_uuid for i in inventories}))
        out: dict[str, dict[str, int]] = defaultdict(dict)
        for inv in inventories:
            out[inv.provider_uuid][inv.resource_class] = capacity(inv) - used.get(
                (inv.provider_uuid, inv.resource_class), 0)
        return dict(out)

    async def project_usages(self, project_id: str, user_id: str | None) -> dict[str, int]:
        stmt = select(Allocation.resource_class, func.sum(Allocation.used)).join(
            Consumer, Consumer.uuid == Allocation.consumer_uuid).where(Consumer.project_id == project_id)
        if user_id:
            stmt = stmt.where(Consumer.user_id == user_id)
        async with self.db.session() as s:
            return {rc: int(n) for rc, n in (await s.execute(stmt.group_by(Allocation.resource_class))).all()}

    async def usages_by_consumer_type(self, project_id: str, user_id: str | None,
                                      consumer_type: str | None) -> dict[str, dict[str, int]]:
        """Placement 1.38's usages: {type: {rc: used, "consumer_count": n}}, consumers with no type
        under "unknown"; ``consumer_type`` "all" sums everyone under "all", another value keeps that
        type only (summed and counted in SQL)."""
        # the constant inline, so SELECT and GROUP BY hold the same SQL (PostgreSQL compares them)
        kind = func.coalesce(Consumer.consumer_type, literal_column("'unknown'"))
        together = consumer_type == "all"

        def scoped(stmt: Any) -> Any:
            stmt = stmt.select_from(Allocation).join(Consumer, Consumer.uuid == Allocation.consumer_uuid).where(
                Consumer.project_id == project_id)
            if user_id:
                stmt = stmt.where(Consumer.user_id == user_id)
            if consumer_type is not None and not together:
                stmt = stmt.where(kind == consumer_type)
            return stmt

        used = func.sum(Allocation.used)
        consumers = func.count(func.distinct(Allocation.consumer_uuid))
        out: dict[str, dict[str, int]] = defaultdict(dict)
        async with self.db.session() as s:
            if together:
                for rc, n in (await s.execute(scoped(select(Allocation.resource_class, used))
                                              .group_by(Allocation.resource_class))).all():
                    out["all"][rc] = int(n)
                if out:
                    out["all"]["consumer_count"] = int((await s.execute(scoped(select(consumers)))).scalar() or 0)
                return dict(out)
            for name, rc, n in (await s.execute(scoped(select(kind, Allocation.resource_class, used))
                                                .group_by(kind, Allocation.resource_class))).all():
                out[name][rc] = int(n)
            for name, count in (await s.execute(scoped(select(kind, consumers)).group_by(kind))).all():
                out[name]["consumer_count"] = int(count)
        return dict(out)

    async def allocations(self, consumer: str) -> tuple[Consumer | None, dict[str, dict[str, int]]]:
        async with self.db.session() as s:
            row = await s.get(Consumer, consumer)
            rows = (await s.execute(select(Allocation).where(Allocation.consumer_uuid == consumer))).scalars()
            out: dict[str, dict[str, int]] = defaultdict(dict)
            for a in rows:
                out[a.provider_uuid][a.resource_class] = a.used
        return row, dict(out)

    async def provider_allocations(self, uuid: str) -> tuple[Provider, dict[str, dict[str, int]]]:
        async with self.db.session() as s:
            provider = Provider.of(await self._provider_row(s, uuid))
            out: dict[str, dict[str, int]] = defaultdict(dict)
            for a in (await s.execute(select(Allocation).where(Allocation.provider_uuid == uuid))).scalars():
                out[a.consumer_uuid][a.resource_class] = a.used
        return provider, dict(out)

    async def set_allocations(self, requests: dict[str, dict[str, Any]]) -> None:
        """Replace the allocations of one or more consumers atomically.

        requests: {consumer: {"allocations": {rp: {rc: n}}, "project_id", "user_id",
                              "consumer_generation" (absent = not checked), "consumer_type"}}
        """
        for attempt in range(RETRIES):
            try:
                async with self.db.session() as s:
                    await self._write_allocations(s, requests)
                return
            except DBAPIError as exc:  # a deadlock or a busy SQLite writer: try again
                if attempt == RETRIES - 1 or not any(word in str(exc).lower() for word in (
                        "deadlock", "locked", "busy", "could not serialize", "lock wait")):
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))

    async def _write_allocations(self, s: AsyncSession, requests: dict[str, dict[str, Any]]) -> None:
        providers = sorted({rp for req in requests.values() for rp in req["allocations"]})
        if providers:  # take the providers' row locks first, always in the same order
            await s.execute(update(ResourceProvider).where(ResourceProvider.uuid.in_(providers))
                            .values(generation=ResourceProvider.generation + 1))
            found = set((await s.execute(select(ResourceProvider.uuid).where(
                ResourceProvider.uuid.in_(providers)))).scalars())
            missing = set(providers) - found
            if missing:
                raise BadRequest(f"Allocation for resource provider '{sorted(missing)[0]}' that does not exist.")
        inventories = {(i.provider_uuid, i.resource_class): i for i in (await s.execute(
            select(Inventory).where(Inventory.provider_uuid.in_(providers)))).scalars()}
        consumers = list(requests)
        stmt = select(Allocation.provider_uuid, Allocation.resource_class, func.sum(Allocation.used)).where(
            Allocation.provider_uuid.in_(providers), Allocation.consumer_uuid.not_in(consumers)).group_by(
            Allocation.provider_uuid, Allocation.resource_class)
        used: dict[tuple[str, str], int] = {(p, rc): int(n) for p, rc, n in (await s.execute(stmt)).all()}
        for consumer, req in requests.items():
            row = await s.get(Consumer, consumer)
            if "consumer_generation" in req:
                expected = req["consumer_generation"]
                if (row is None and expected is not None) or (row is not None and row.generation != expected):
                    raise Conflict(f"consumer generation conflict - expected {expected} but got "
                                   f"{None if row is None else row.generation}",
                                   kind="placement.concurrent_update")
            await s.execute(delete(Allocation).where(Allocation.consumer_uuid == consumer))
            if not req["allocations"]:
                if row is not None:
                    await s.delete(row)
                continue
            if row is None:
                row = Consumer(uuid=consumer, project_id=req["project_id"], user_id=req["user_id"],
                               consumer_type=req.get("consumer_type"), generation=1)
                s.add(row)
            else:
                row.generation += 1
                row.project_id, row.user_id = req["project_id"], req["user_id"]
                if req.get("consumer_type"):  # 1.38 sets (or changes) the type; earlier versions keep it
                    row.consumer_type = req["consumer_type"]
            for rp, resources in req["allocations"].items():
                for rc, amount in resources.items():
                    inv = inventories.get((rp, rc))
                    if inv is None:
                        raise Conflict(f"Unable to allocate inventory: resource provider {rp} has no inventory "
                                       f"of class {rc}.", kind="placement.undefined")
                    check_amount(inv, amount, rp)
                    total = used.get((rp, rc), 0) + amount
                    if total > capacity(inv):
                        raise Conflict(f"Unable to allocate inventory: {rc} on resource provider {rp} would use "
                                       f"{total} of a capacity of {capacity(inv)}.",
                                       kind="placement.inventory.inuse")
                    used[(rp, rc)] = total
                    s.add(Allocation(provider_uuid=rp, consumer_uuid=consumer, resource_class=rc, used=amount))

    # -- candidates -------------------------------------------------------------------------
    async def fits(self, resources: dict[str, int], among: list[str] | None = None) -> list[Candidate]:
        """Providers that alone have room for every requested amount."""
        for rc in resources:
            await self.known_class(rc)
        async with self.db.session() as s:
            stmt = select(ResourceProvider)
            if among is not None:
                stmt = stmt.where(ResourceProvider.uuid.in_(among))
            provs = {p.uuid: Provider.of(p) for p in (await s.execute(stmt)).scalars()}
            invs: dict[str, dict[str, Inventory]] = defaultdict(dict)
            for inv in (await s.execute(select(Inventory).where(Inventory.provider_uuid.in_(list(provs))))).scalars():
                invs[inv.provider_uuid][inv.resource_class] = inv
            used = await self._usage(s, list(provs))
        out = []
        for uuid, provider in provs.items():
            have = invs.get(uuid, {})
            ok = True
            for rc, amount in resources.items():
                inv = have.get(rc)
                if inv is None or amount < inv.min_unit or amount > inv.max_unit or amount % inv.step_size or \
                        used.get((uuid, rc), 0) + amount > capacity(inv):
                    ok = False
                    break
            if ok:
                out.append(Candidate(provider, {rc: capacity(i) for rc, i in have.items()},
                                     {rc: used.get((uuid, rc), 0) for rc in have}))
        return out

    async def candidates(self, resources: dict[str, int], required: list[str], member_of: list[list[str]],
                         limit: int | None) -> list[Candidate]:
        found = []
        for cand in await self.fits(resources):
            traits = set(await self.provider_traits(cand.provider.uuid))
            if required and not self._traits_ok(traits, required):
                continue
            if member_of:
                aggs = set(await self.aggregates(cand.provider.uuid))
                if not all(aggs & set(group) for group in member_of):
                    continue
            cand.traits = sorted(traits)
            found.append(cand)
        found.sort(key=lambda c: c.provider.name)
        return found[:limit] if limit else found
