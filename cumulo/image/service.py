"""The image service: Glance's rules for who sees an image, its states, data and members.

States: ``queued`` (no data) -> ``saving`` (data arriving) -> ``active``; with import,
``queued`` -> ``uploading`` (staged) -> ``importing`` -> ``active``.  ``deactivated`` hides the data
from non-admins; ``deleted`` is final.  A writer holds a lease on the image while data arrives; if
it dies, the reconciler finds the expired lease, discards the partial data and puts the image back
to ``queued``, so nothing stays in ``saving``.

Data is inspected as it arrives (``cumulo.core.format_inspector``): data that is not the image's
``disk_format``, or that would make QEMU open other files, is refused with a 400 and the image is
queued again with nothing kept.

Visibility: ``public`` (everyone, listed), ``community`` (everyone, listed only on request),
``shared`` (the owner, and projects it was shared with; listed for them once they accept),
``private`` (the owner).  Admins see everything.

Lists: the database applies these rules, the filters, the sort keys and the marker (a seek, not
an offset) and reads one page (at most 1,000 images), so a listing costs the same with 100 or
100,000 images in the table; tag and property filters are narrowed in SQL and checked exactly
on the rows read.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, and_, bindparam, case, false, func, literal, or_, select, type_coerce, update

from cumulo.core.config import Config
from cumulo.core.context import AuthContext
from cumulo.core.db import Database, new_id, utcnow
from cumulo.core.format_inspector import ImageRefused, Inspection, Verdict
from cumulo.core.http.faults import BadRequest, Conflict, Fault, Forbidden, NotFound, PayloadTooLarge
from cumulo.core.watch import watch
from cumulo.identity.service import IdentityService
from cumulo.image import importing
from cumulo.image.cache import ImageCache
from cumulo.image.importing import ImportRequest
from cumulo.image.models import Image, ImageMember, ImageTask
from cumulo.image.stores import StoreFull, Written
from cumulo.image.stores.filesystem import FilesystemStore

LOG = logging.getLogger(__name__)
DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop")
CONTAINER_FORMATS = ("ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")
VISIBILITIES = ("public", "private", "shared", "community")
MEMBER_STATUSES = ("pending", "accepted", "rejected")
IMPORT_METHODS = ("glance-direct", "web-download", "copy-image")
MIB = 1 << 20
# defaults registered in unified limits when the image service first starts (MiB / counts)
DEFAULT_LIMITS = {"image_size_total": 1 << 20, "image_stage_total": 1 << 20, "image_count_total": 1000,
                  "image_count_uploading": 100}


SORT_KEYS = {"name", "status", "container_format", "disk_format", "size", "id", "created_at", "updated_at",
             "min_disk", "min_ram", "visibility", "owner"}
NULLABLE = {"name", "container_format", "disk_format", "size", "owner"}
MANY = 500  # an IN list longer than this is written into the SQL (PostgreSQL takes 32,767 parameters)


def many(values: list[str]) -> Any:
    """An IN list of any length: bound parameters for a few, literals (quoted by SQLAlchemy) for
    many, so no query runs out of parameters."""
    return bindparam(None, list(values), expanding=True, literal_execute=len(values) > MANY)


def _like(text: str) -> str:
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def _order(key: str, image: Image | None = None) -> list[tuple[Any, Any]]:
    """What a sort key orders by, with ``image``'s values there: a nullable column as (is null,
    value or a filler), so NULLs come last ascending and first descending on every database and
    the marker's seek compares no NULLs."""
    column = getattr(Image, key)
    value = getattr(image, key) if image is not None else None
    if key not in NULLABLE:
        return [(column, value)]
    filler = 0 if key == "size" else ""
    return [(case((column.is_(None), 1), else_=0), int(value is None)),
            (func.coalesce(column, literal(filler)), filler if value is None else value)]


def _after(keys: list[tuple[str, str]], row: Image) -> Any:
    """Rows after ``row`` in this order (the seek that replaces an offset)."""
    flat = [(expr, value, direction) for key, direction in keys for expr, value in _order(key, row)]
    clauses = []
    for i, (expr, value, direction) in enumerate(flat):
        prefix = [e == v for e, v, _ in flat[:i]]
        clauses.append(and_(*prefix, expr < value if direction == "desc" else expr > value))
    return or_(*clauses)

@dataclass
class Caller:
    """Who asks, in the terms Glance's rules use."""

    project_id: str | None
    admin: bool
    user_id: str

    @classmethod
    def of(cls, auth: AuthContext) -> Caller:
        return cls(auth.project_id, auth.is_admin(), auth.user_id)


@dataclass(frozen=True)
class ImageInfo:
    """An image as other services (compute) see it: plain data, so the call could be remote."""

    id: str
    name: str | None
    status: str
    owner: str | None
    visibility: str
    protected: bool
    min_disk: int
    min_ram: int
    size: int | None
    properties: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, row: Image) -> ImageInfo:
        return cls(row.id, row.name, row.status, row.owner, row.visibility, row.protected, row.min_disk,
                   row.min_ram, row.size, dict(row.properties or {}), row.created_at, row.updated_at)


async def _no_data() -> AsyncIterator[bytes]:
    return
    yield b""  # an async generator that yields nothing


STORE_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}"


class ImageService:
    def __init__(self, cfg: Config, db: Database, identity: IdentityService, bus: Any = None) -> None:
        self.cfg, self.db, self.identity = cfg, db, identity
        # every committed write of an image publishes resource.image.* on ``bus`` (cumulo.core.watch)
        watch(db, bus, Image, "image", lambda row: row["status"], project="owner",
              gone=lambda row: row.get("status") == "deleted")
        names = list(dict.fromkeys(cfg.image.stores or ["file"]))
        bad = [n for n in names if not re.fullmatch(STORE_NAME, n)]
        if bad:
            raise ValueError(f"[image] stores: {bad[0]!r} is not a store name (letters, digits, _ . -)")
        # the default store keeps the layout of a cloud with one store (and the staging area)
        self.stores = {name: FilesystemStore(cfg.state_path / ("images" if i == 0 else f"images-{name}"), name,
                                             "The default filesystem store" if i == 0 else f"Filesystem store {name}")
                       for i, name in enumerate(names)}
        self.store = self.stores[names[0]]
        self.cache = ImageCache(db, cfg.state_path / "image-cache", self)
        self.size_cap = cfg.image.image_size_cap
        self.web_download_allowed = list(cfg.image.web_download_allowed)
        self.convert_to = cfg.image.import_convert_to
        self._jobs: set[asyncio.Task[None]] = set()
        self.importer = importing.Importer(self)
        self.instance = new_id()
        self._reconciler: asyncio.Task[None] | None = None
        self.member_quota = cfg.image.image_member_quota
        self.lease = dt.timedelta(seconds=cfg.image.upload_lease)
        self.require_format_match = cfg.image.require_image_format_match

    async def start(self) -> None:
        await self.register_default_limits()
        await self.reconcile()
        self._reconciler = asyncio.get_running_loop().create_task(self._reconcile_forever())

    async def stop(self) -> None:
        if self._reconciler:
            self._reconciler.cancel()
        for job in list(self._jobs):
            job.cancel()

    def _spawn(self, coro: Any) -> None:
        job = asyncio.get_running_loop().create_task(coro)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    @staticmethod
    def caller(auth: AuthContext) -> Caller:
        return Caller.of(auth)

    # -- stores -----------------------------------------------------------------------------
    @property
    def import_methods(self) -> list[str]:
        """The enabled methods: web-download when some URL is allowed, copy-image with two stores."""
        return [m for m in IMPORT_METHODS if (m != "web-download" or self.web_download_allowed)
                and (m != "copy-image" or len(self.stores) > 1)]

    def stores_of(self, image: Image) -> list[str]:
        """The stores holding the image's data (default first)."""
        names = [n for n in (image.stores or "").split(",") if n in self.stores]
        return sorted(names, key=lambda n: (n != self.store.name, n))

    def data_store(self, image: Image) -> FilesystemStore | None:
        """A store that has the image's data, or None."""
        for name in self.stores_of(image):
            if self.stores[name].size(image.id) is not None:
                return self.stores[name]
        return None

    def size_cap_for(self, room: int | None) -> int:
        return self.size_cap if room is None else min(room, self.size_cap)

    async def delete_from_store(self, image: Image, store_id: str) -> None:
        """Remove the copy in one store (DELETE /v2/stores/{store}/{image}); never the last one."""
        if image.status != "active":
            raise Conflict("It's not allowed to remove image data from store if image status is not 'active'")
        names = self.stores_of(image)
        if store_id not in names:
            raise NotFound(f"Image {image.id} is not stored in store {store_id}.")
        if len(names) == 1:
            raise Forbidden("Cannot delete image data from the only store containing it. Consider deleting the "
                            "image instead.")
        async with self.db.session() as s:
            result = await s.execute(update(Image).where(Image.id == image.id, Image.stores == image.stores).values(
                stores=",".join(sorted(n for n in names if n != store_id)), updated_at=utcnow()))
        if result.rowcount != 1:
            raise Conflict(f"Image {image.id} changed meanwhile (another operation on its stores): try again.")
        await self.stores[store_id].delete(image.id)

    # -- access ---------------------------------------------------------------------------
    async def membership(self, image_id: str, project_id: str | None) -> ImageMember | None:
        if not project_id:
            return None
        async with self.db.session() as s:
            return await s.get(ImageMember, (image_id, project_id))

    async def can_see(self, image: Image, who: Caller) -> bool:
        if who.admin or image.visibility in ("public", "community") or image.owner == who.project_id:
            return True
        if image.visibility == "shared":
            return await self.membership(image.id, who.project_id) is not None
        return False

    async def get(self, image_id: str, who: Caller, include_deleted: bool = False) -> Image:
        async with self.db.session() as s:
            image = await s.get(Image, image_id)
        if image is None or (image.status == "deleted" and not include_deleted) or not await self.can_see(image, who):
            raise NotFound(f"No image found with ID {image_id}")
        return image

    def must_own(self, image: Image, who: Caller) -> None:
        if not who.admin and image.owner != who.project_id:
            raise Forbidden(f"You are not permitted to modify image {image.id}: it belongs to another project.")

    # -- create, list, update, delete ------------------------------------------------------
    async def create(self, who: Caller, values: dict[str, Any]) -> Image:
        if values.get("visibility") == "public" and not who.admin:
            raise Forbidden("Only an admin may create public images (policy publicize_image).")
        if "owner" in values and values["owner"] != who.project_id and not who.admin:
            raise Forbidden("You may not create an image owned by another project.")
        values.setdefault("owner", who.project_id)
        values.setdefault("visibility", "shared")
        await self.check_count_quota(values["owner"])
        image = Image(id=values.pop("id", None) or str(uuid.uuid4()), status="queued", **values)
        try:
            async with self.db.session() as s:
                s.add(image)
        except Exception as exc:
            if "IntegrityError" in type(exc).__name__:
                raise Conflict(f"An image with identifier {image.id} already exists") from None
            raise
        return image

    def _visible(self, who: Caller, filters: dict[str, Any]) -> Any:
        """A select of the images ``who`` lists with ``filters`` (Glance's rules, all in SQL)."""
        stmt = select(Image).where(Image.status != "deleted")
        for column in ("name", "status", "disk_format", "container_format", "owner"):
            if filters.get(column) is not None:
                stmt = stmt.where(getattr(Image, column) == filters[column])
        if filters.get("ids") is not None:
            stmt = stmt.where(Image.id.in_(many(filters["ids"])))
        if filters.get("protected") is not None:
            stmt = stmt.where(Image.protected.is_(filters["protected"]))
        stmt = stmt.where(Image.os_hidden.is_(bool(filters.get("os_hidden", False))))
        if filters.get("size_min") is not None:
            stmt = stmt.where(Image.size >= filters["size_min"])
        if filters.get("size_max") is not None:
            stmt = stmt.where(Image.size <= filters["size_max"])
        visibility = filters.get("visibility")
        if visibility and visibility != "all":
            stmt = stmt.where(Image.visibility == visibility)
        # tags and properties live in JSON text: a LIKE narrows the rows, Python checks them exactly
        for tag in filters.get("tags") or []:
            stmt = stmt.where(type_coerce(Image.tags, Text).like(f"%{_like(json.dumps(tag))}%", escape="!"))
        for key in filters.get("properties") or {}:
            stmt = stmt.where(type_coerce(Image.properties, Text).like(
                f"%{_like(json.dumps(key))}:%", escape="!"))
        if who.admin:  # an admin sees every image (community ones too)
            return stmt
        mine = Image.owner == who.project_id if who.project_id else false()
        seen = [Image.visibility == "public", mine]
        if visibility in ("community", "all"):
            seen.append(Image.visibility == "community")
        if who.project_id:
            member = select(ImageMember.image_id).where(ImageMember.image_id == Image.id,
                                                        ImageMember.member_id == who.project_id)
            member_status = filters.get("member_status", "accepted")
            if member_status != "all":
                member = member.where(ImageMember.status == member_status)
            seen.append(and_(Image.visibility == "shared", member.exists()))
        return stmt.where(or_(*seen))

    @staticmethod
    def _exact(image: Image, filters: dict[str, Any]) -> bool:
        tags, props = filters.get("tags") or [], filters.get("properties") or {}
        return all(t in (image.tags or []) for t in tags) and all(
            str((image.properties or {}).get(k)) == v for k, v in props.items())

    async def list(self, who: Caller, filters: dict[str, Any], sort: list[tuple[str, str]] | None = None,
                   marker: str | None = None, limit: int | None = None) -> list[Image]:
        """The images ``who`` sees, filtered, in ``sort`` order (id last), after ``marker``, at most
        ``limit`` of them: filtered, sorted and paged by the database (BadRequest for a marker
        that is not in this listing)."""
        stmt = self._visible(who, filters)
        keys = [*(sort or [("created_at", "desc")])]
        if not any(k == "id" for k, _ in keys):
            keys.append(("id", keys[-1][1]))
        for key, direction in keys:
            stmt = stmt.order_by(*(e.desc() if direction == "desc" else e.asc() for e, _ in _order(key)))
        exact = bool(filters.get("tags") or filters.get("properties"))
        async with self.db.session() as s:
            if marker is not None:
                row = (await s.execute(self._visible(who, filters).where(Image.id == marker))).scalar()
                if row is None or not self._exact(row, filters):
                    raise BadRequest(f"Invalid marker {marker}: no such image in this listing.")
                stmt = stmt.where(_after(keys, row))
            if not exact:
                return list((await s.execute(stmt.limit(limit) if limit is not None else stmt)).scalars())
            out: list[Image] = []
            batch = 500
            offset = 0
            while limit is None or len(out) < limit:
                rows = list((await s.execute(stmt.limit(batch).offset(offset))).scalars())
                out += [i for i in rows if self._exact(i, filters)]
                if len(rows) < batch:
                    break
                offset += batch
            return out if limit is None else out[:limit]

    async def update(self, image: Image, who: Caller, changes: dict[str, Any], props: dict[str, Any],
                     removed: set[str]) -> Image:
        self.must_own(image, who)
        if changes.get("visibility") == "public" and image.visibility != "public" and not who.admin:
            raise Forbidden("Only an admin may make an image public (policy publicize_image).")
        if "owner" in changes and not who.admin:
            raise Forbidden("Attribute 'owner' is reserved and can only be changed by an admin.")
        if image.status not in ("queued",) and ({"disk_format", "container_format"} & set(changes)):
            if any(getattr(image, k) != changes[k] for k in ("disk_format", "container_format") if k in changes):
                raise Forbidden("disk_format and container_format cannot change once the image has data.")
        properties = {k: v for k, v in (image.properties or {}).items() if k not in removed}
        properties.update(props)
        async with self.db.session() as s:
            row = await s.get(Image, image.id)
            assert row is not None
            for key, value in changes.items():
                setattr(row, key, value)
            row.properties = properties
            row.updated_at = utcnow()
        # members are kept when an image stops being shared (as Glance does); they matter again if it is
        return row

    async def delete(self, image: Image, who: Caller) -> None:
        self.must_own(image, who)
        if image.protected:
            raise Forbidden(f"Image {image.id} is protected and cannot be deleted.")
        async with self.db.session() as s:
            await s.execute(update(Image).where(Image.id == image.id).values(
                status="deleted", deleted_at=utcnow(), lease_owner=None, lease_until=None))
            await s.execute(ImageMember.__table__.delete().where(ImageMember.image_id == image.id))
        for store in self.stores.values():
            await store.delete(image.id)
        await self.store.delete(image.id, staging=True)
        await self.cache.forget(image.id)

    async def set_status(self, image: Image, who: Caller, action: str) -> None:
        self.must_own(image, who)  # the owner or an admin (Glance's default policy)
        allowed = {"deactivate": ("active", "deactivated"), "reactivate": ("deactivated", "active")}
        source, target = allowed[action]
        if image.status not in (source, target):
            raise Forbidden(f"Image {image.id} is {image.status}: only {source} images can be {action}d.")
        async with self.db.session() as s:
            await s.execute(update(Image).where(Image.id == image.id, Image.status.in_((source, target)))
                            .values(status=target, updated_at=utcnow()))

    async def set_tags(self, image: Image, who: Caller, add: str | None = None, remove: str | None = None) -> None:
        self.must_own(image, who)
        tags = list(image.tags or [])
        if add is not None:
            if len(add) > 255:
                raise BadRequest("A tag may be at most 255 characters long.")
            if add not in tags:
                if len(tags) >= 128:
                    raise PayloadTooLarge("An image may have at most 128 tags.")
                tags.append(add)
        if remove is not None:
            if remove not in tags:
                raise NotFound(f"Tag {remove} not found on image {image.id}")
            tags.remove(remove)
        async with self.db.session() as s:
            await s.execute(update(Image).where(Image.id == image.id).values(tags=tags, updated_at=utcnow()))

    # -- what other services call (plain data in and out) ---------------------------------
    async def image_info(self, image_id: str, who: Caller) -> ImageInfo:
        """The image if ``who`` may see it (NotFound otherwise, or when it is deleted)."""
        return ImageInfo.of(await self.get(image_id, who))

    async def image_infos(self, who: Caller, filters: dict[str, Any]) -> list[ImageInfo]:
        """The images ``who`` sees, filtered as the Image API's list is."""
        return [ImageInfo.of(row) for row in await self.list(who, filters, [("created_at", "desc")])]

    async def create_image(self, who: Caller, values: dict[str, Any], empty: bool = False) -> ImageInfo:
        """A new queued image (a snapshot's, for compute), within ``who``'s image quota.  ``empty``:
        active at once with no data (raw, bare, size 0), the image a volume-backed server's
        snapshot is (its properties say which volume snapshots to boot from), as Glance makes it
        when Nova uploads zero bytes."""
        if not empty:
            return ImageInfo.of(await self.create(who, values))
        image = await self.create(who, {**values, "disk_format": "raw", "container_format": "bare"})
        written = await self.store.write(image.id, _no_data())
        async with self.db.session() as s:
            await s.execute(update(Image).where(Image.id == image.id).values(
                status="active", stores=self.store.name, size=written.size, virtual_size=written.size,
                checksum=written.md5,
                os_hash_algo="sha512", os_hash_value=written.sha512, updated_at=utcnow()))
        return await self.image_info(image.id, Caller(None, True, ""))

    async def set_image_properties(self, image_id: str, who: Caller, props: dict[str, str],
                                   removed: set[str] | None = None, replace: bool = False) -> ImageInfo:
        """Add or change the image's own properties (Compute's image-metadata proxy): ``removed``
        drops keys, ``replace`` drops every property not in ``props``. NotFound when ``who``
        cannot see the image, Forbidden when ``who`` does not own it."""
        image = await self.get(image_id, who)
        gone = set(image.properties or {}) - set(props) if replace else set(removed or ())
        return ImageInfo.of(await self.update(image, who, {}, props, gone))

    async def delete_image(self, image_id: str, who: Caller) -> None:
        """Delete the image: NotFound when ``who`` cannot see it, Forbidden when it is protected
        or ``who`` does not own it."""
        await self.delete(await self.get(image_id, who), who)

    # -- quotas (unified limits of the image service) ---------------------------------------
    async def register_default_limits(self) -> None:
        description = "Cumulo's default for the image service"
        await self.identity.register_default_limits(
            "image", {name: (value, description) for name, value in DEFAULT_LIMITS.items()})

    async def limit(self, project: str | None, name: str) -> int | None:
        if not project:
            return None
        value = await self.identity.limit(project, "image", name)
        return None if value is None or value < 0 else value

    async def check_count_quota(self, project: str | None) -> None:
        limit = await self.limit(project, "image_count_total")
        if limit is None:
            return
        async with self.db.session() as s:
            count = (await s.execute(select(func.count()).select_from(Image).where(
                Image.owner == project, Image.status != "deleted"))).scalar() or 0
        if count >= limit:
            raise PayloadTooLarge(f"Project {project} is at its image_count_total quota of {limit} images.")

    async def bytes_allowed(self, project: str | None, name: str, column: Any, exclude: str) -> int | None:
        """How many more bytes the project may store under the limit ``name`` (MiB in limits)."""
        limit = await self.limit(project, name)
        if limit is None:
            return None
        async with self.db.session() as s:
            used = (await s.execute(select(func.coalesce(func.sum(column), 0)).where(
                Image.owner == project, Image.status != "deleted", Image.id != exclude))).scalar() or 0
        return max(0, limit * MIB - int(used))

    async def check_uploading_quota(self, project: str | None) -> None:
        limit = await self.limit(project, "image_count_uploading")
        if limit is None:
            return
        async with self.db.session() as s:
            count = (await s.execute(select(func.count()).select_from(Image).where(
                Image.owner == project, Image.status.in_(("saving", "uploading", "importing"))))).scalar() or 0
        if count >= limit:
            raise PayloadTooLarge(f"Project {project} is at its image_count_uploading quota of {limit}.")

    # -- data -------------------------------------------------------------------------------
    async def _claim(self, image: Image, source: tuple[str, ...], target: str) -> None:
        """Move the image to a transitional state with a lease, or 409 if it is not in ``source``."""
        now = utcnow()
        async with self.db.session() as s:
            result = await s.execute(update(Image).where(Image.id == image.id, Image.status.in_(source)).values(
                status=target, lease_owner=self.instance, lease_until=now + self.lease, updated_at=now))
        if result.rowcount != 1:
            fresh = await self.get(image.id, Caller(None, True, ""))
            raise Conflict(f"Image status transition from {fresh.status} to {target} is not allowed.")

    async def _renew(self, image_id: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.lease.total_seconds() / 3)
            except TimeoutError:
                async with self.db.session() as s:
                    await s.execute(update(Image).where(Image.id == image_id, Image.lease_owner == self.instance)
                                    .values(lease_until=utcnow() + self.lease))

    async def upload(self, image: Image, who: Caller, chunks: AsyncIterator[bytes], staging: bool = False,
                     store: str | None = None) -> Image:
        """The data of PUT .../file (into ``store``, the default store unless named) or of PUT .../stage."""
        self.must_own(image, who)
        target = self.stores[store] if store else self.store
        if staging:
            await self.check_uploading_quota(image.owner)
            room = await self.bytes_allowed(image.owner, "image_stage_total", Image.staged_size, image.id)
            await self._claim(image, ("queued",), "uploading")
        else:
            await self.check_uploading_quota(image.owner)
            room = await self.bytes_allowed(image.owner, "image_size_total", Image.size, image.id)
            await self._claim(image, ("queued",), "saving")
        stop = asyncio.Event()
        renew = asyncio.get_running_loop().create_task(self._renew(image.id, stop))
        inspection = None if staging else self.inspection(image)  # staged data is inspected on import
        try:
            source = chunks if inspection is None else self._inspected(chunks, inspection)
            written = await (self.store if staging else target).write(image.id, source, self.size_cap_for(room),
                                                                      staging=staging)
        except BaseException as exc:
            await self._release(image.id, "queued")
            if isinstance(exc, StoreFull):
                if room is None or room > self.size_cap:
                    raise PayloadTooLarge(f"The image data exceeds the image size cap of {self.size_cap} "
                                          "bytes.") from None
                limit = "image_stage_total" if staging else "image_size_total"
                raise PayloadTooLarge(f"The image data exceeds the {limit} quota of project {image.owner}.") from None
            if isinstance(exc, ImageRefused):
                LOG.warning("upload to image %s refused: %s", image.id, exc)
                raise BadRequest(str(exc)) from None
            raise
        finally:
            stop.set()
            await renew
        if staging:
            async with self.db.session() as s:
                await s.execute(update(Image).where(Image.id == image.id).values(
                    staged_size=written.size, lease_owner=None, lease_until=None, updated_at=utcnow()))
        else:
            assert inspection is not None and inspection.verdict is not None
            await self._activate(image, written, inspection.verdict, [target.name])
        return await self.get(image.id, Caller(None, True, ""))

    def inspection(self, image: Image) -> Inspection:
        return Inspection(image.disk_format, image.container_format, self.require_format_match)

    @staticmethod
    async def _inspected(chunks: AsyncIterator[bytes], inspection: Inspection) -> AsyncIterator[bytes]:
        """The chunks, each shown to the inspection before the store writes it: a refusal stops
        the write at once (the server discards the rest of the request body)."""
        async for chunk in chunks:
            inspection.feed(chunk)
            yield chunk
        inspection.finish()

    async def _release(self, image_id: str, status: str) -> None:
        async with self.db.session() as s:
            await s.execute(update(Image).where(Image.id == image_id, Image.status != "deleted").values(
                status=status, lease_owner=None, lease_until=None, staged_size=None, updated_at=utcnow()))

    async def _activate(self, image: Image, written: Written, verdict: Verdict, stores: list[str] | None = None,
                        extra: dict[str, Any] | None = None) -> None:
        # the virtual size as the inspection read it, when the data is what the image claims
        virtual = verdict.virtual_size if image.disk_format in ("raw", verdict.format) else None
        names = sorted(stores or [self.store.name])
        async with self.db.session() as s:
            result = await s.execute(update(Image).where(Image.id == image.id, Image.status != "deleted").values(
                status="active", size=written.size, virtual_size=virtual, checksum=written.md5,
                os_hash_algo="sha512", os_hash_value=written.sha512, lease_owner=None, lease_until=None,
                staged_size=None, stores=",".join(names), updated_at=utcnow(), **(extra or {})))
        if result.rowcount != 1:  # deleted while the data arrived: delete wins
            for name in names:
                await self.stores[name].delete(image.id)

    async def import_image(self, image: Image, who: Caller, request: ImportRequest,
                           request_id: str | None) -> ImageTask | None:
        """Start an import (``importing.Importer``); the task, or None when copy-image finds the
        data in every store asked for already."""
        return await self.importer.start(image, who, request, request_id)

    async def tasks(self, image: Image) -> list[ImageTask]:
        async with self.db.session() as s:
            return list((await s.execute(select(ImageTask).where(ImageTask.image_id == image.id)
                                         .order_by(ImageTask.created_at))).scalars())

    async def task(self, task_id: str, who: Caller) -> ImageTask:
        async with self.db.session() as s:
            task = await s.get(ImageTask, task_id)
        if task is None or not (who.admin or task.owner == who.project_id):
            raise NotFound(f"Task with the given ID {task_id} not found")
        return task

    async def list_tasks(self, who: Caller, filters: dict[str, str], sort_key: str, sort_dir: str,
                         marker: str | None, limit: int) -> list[ImageTask]:
        """Tasks ``who`` sees (an admin all, others their project's), filtered by status and type,
        sorted by ``sort_key`` then id, after ``marker``, at most ``limit``: all in SQL."""
        stmt = select(ImageTask)
        if not who.admin:
            stmt = stmt.where(ImageTask.owner == who.project_id)
        for key in ("status", "type"):
            if filters.get(key):
                stmt = stmt.where(getattr(ImageTask, key) == filters[key])
        column = getattr(ImageTask, sort_key)
        desc = sort_dir == "desc"
        async with self.db.session() as s:
            if marker is not None:
                row = (await s.execute(stmt.where(ImageTask.id == marker))).scalar()
                if row is None:
                    raise BadRequest(f"Invalid marker {marker}: no such task in this listing.")
                value = getattr(row, sort_key)
                stmt = stmt.where(or_(column < value if desc else column > value,
                                      and_(column == value, ImageTask.id < row.id if desc else ImageTask.id > row.id)))
            stmt = stmt.order_by(column.desc() if desc else column.asc(),
                                 ImageTask.id.desc() if desc else ImageTask.id.asc()).limit(limit)
            return list((await s.execute(stmt)).scalars())

    async def set_import_properties(self, image_id: str, **values: str) -> None:
        """Glance's os_glance_importing_to_stores / os_glance_failed_import on the image."""
        async with self.db.session() as s:
            row = await s.get(Image, image_id)
            if row is not None:
                row.properties = {**(row.properties or {}), **values}

    def check_readable(self, image: Image, who: Caller) -> None:
        if image.status == "deactivated" and not who.admin:
            raise Forbidden("The requested image has been deactivated. Image data download is forbidden.")

    # -- members ----------------------------------------------------------------------------
    async def add_member(self, image: Image, who: Caller, member_id: str) -> ImageMember:
        self.must_own(image, who)
        if image.visibility != "shared":
            raise Forbidden(f"Only shared images have members; image {image.id} is {image.visibility}.")
        async with self.db.session() as s:
            count = (await s.execute(select(func.count()).select_from(ImageMember).where(
                ImageMember.image_id == image.id))).scalar() or 0
            if await s.get(ImageMember, (image.id, member_id)) is not None:
                raise Conflict(f"Member {member_id} already exists for image {image.id}.")
            if count >= self.member_quota:
                raise PayloadTooLarge(f"An image may have at most {self.member_quota} members.")
            member = ImageMember(image_id=image.id, member_id=member_id, status="pending")
            s.add(member)
        return member

    async def members(self, image: Image, who: Caller) -> list[ImageMember]:
        if image.visibility != "shared":
            raise Forbidden(f"Only shared images have members; image {image.id} is {image.visibility}.")
        async with self.db.session() as s:
            rows = list((await s.execute(select(ImageMember).where(ImageMember.image_id == image.id))).scalars())
        if who.admin or image.owner == who.project_id:
            return rows
        return [m for m in rows if m.member_id == who.project_id]

    async def member(self, image: Image, who: Caller, member_id: str) -> ImageMember:
        if not (who.admin or image.owner == who.project_id or member_id == who.project_id):
            raise NotFound(f"Member {member_id} not found for image {image.id}.")
        member = await self.membership(image.id, member_id)
        if member is None:
            raise NotFound(f"Member {member_id} not found for image {image.id}.")
        return member

    async def set_member_status(self, image: Image, who: Caller, member_id: str, status: str) -> ImageMember:
        member = await self.member(image, who, member_id)
        if member_id != who.project_id and not who.admin:
            raise Forbidden("Only the member itself may accept or reject an image.")
        if status not in MEMBER_STATUSES:
            raise BadRequest(f"Invalid member status {status!r}: one of {', '.join(MEMBER_STATUSES)}.")
        async with self.db.session() as s:
            row = await s.get(ImageMember, (image.id, member_id))
            assert row is not None
            row.status, row.updated_at = status, utcnow()
        member.status = status
        return member

    async def remove_member(self, image: Image, who: Caller, member_id: str) -> None:
        self.must_own(image, who)
        await self.member(image, who, member_id)
        async with self.db.session() as s:
            await s.execute(ImageMember.__table__.delete().where(ImageMember.image_id == image.id,
                                                                 ImageMember.member_id == member_id))

    # -- reconcile --------------------------------------------------------------------------
    async def reconcile(self) -> dict[str, int]:
        """Level-triggered clean-up: expired uploads back to queued, data of deleted images and
        files no image owns removed.  Safe to run at any time, on any controller."""
        now = utcnow()
        fixed = {"stale_uploads": 0, "orphan_files": 0}
        async with self.db.session() as s:
            stale = list((await s.execute(select(Image).where(
                Image.status.in_(("saving", "importing", "uploading")), Image.lease_until.is_not(None),
                Image.lease_until < now))).scalars())
            live = set((await s.execute(select(Image.id).where(Image.status != "deleted"))).scalars())
            # data that predates stores is in the default store
            await s.execute(update(Image).where(Image.stores.is_(None), Image.status.in_(("active", "deactivated")))
                            .values(stores=self.store.name))
        for image in stale:
            LOG.warning("image %s was left %s by a writer that stopped; returning it to queued",
                        image.id, image.status)
            await self.store.delete(image.id, staging=True)
            if image.status == "saving":
                await self.store.delete(image.id)
            await self._release(image.id, "queued")
            async with self.db.session() as s:  # its import task ended with the writer
                await s.execute(update(ImageTask).where(ImageTask.image_id == image.id, ImageTask.status.in_(
                    ("pending", "processing"))).values(status="failure", updated_at=utcnow(),
                                                       message="The import stopped: its image service went away."))
            fixed["stale_uploads"] += 1
        for key in self.store.keys(staging=True) - live:
            await self.store.delete(key, staging=True)
            fixed["orphan_files"] += 1
        for store in self.stores.values():
            for key in store.keys() - live:
                await store.delete(key)
                fixed["orphan_files"] += 1
        fixed["orphan_files"] += await self.cache.reconcile(live)
        return fixed

    async def _reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(min(10.0, self.lease.total_seconds()))
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                LOG.warning("image reconcile failed", exc_info=True)


__all__ = ["ImageService", "Caller", "ImportRequest", "Fault", "DISK_FORMATS", "CONTAINER_FORMATS", "VISIBILITIES"]
