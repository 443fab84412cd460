"""The block devices of a server create (``block_device_mapping_v2``, and the legacy
``block_device_mapping``), checked the way Nova checks them before anything is built.

A mapping whose destination is a volume is one of Nova's four pairs: an existing volume
(``source_type`` volume), or a new volume made from an image, from a snapshot or blank, of
``volume_size`` GiB.  The one with ``boot_index`` 0 is the root disk: the server boots from
that volume and needs no image.  An image with destination ``local`` and boot index 0 is the
ordinary image boot; blank local disks are the flavor's ephemeral and swap disks.  An image
may define block devices too (a volume-backed server's snapshot does): they join the request's,
which win on the same device name, and a root volume among them makes the server volume-backed.
"""

from __future__ import annotations

import json
from typing import Any

from cumulo.compute.servers.volumes import MAX_VOLUMES
from cumulo.core.http.faults import BadRequest, NotFound

INVALID = "Block Device Mapping is Invalid"


def _boot_index(value: Any) -> int | None:
    if value is None or value == "" or value == "none":
        return None
    try:
        index = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{INVALID}: boot_index {value!r} is not an integer.") from None
    return index if index >= 0 else None


def _size(value: Any, what: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{INVALID}: volume_size of {what} is not an integer.") from None
    if not 0 < size <= 16384:
        raise BadRequest(f"{INVALID}: volume_size of {what} must be from 1 to 16384 GiB.")
    return size


def volume_caller(auth: Any) -> Any:
    """Block storage's Caller for the user who asks (``auth`` is the request's)."""
    from cumulo.volume.service import Caller

    return Caller(auth.project_id or "", auth.user_id or "", auth.is_admin())


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1", "yes", "on")


def legacy(mappings: list[Any], has_image: bool) -> list[dict[str, Any]]:
    """The v1 mappings (``volume_id`` or ``snapshot_id`` on a device name) in v2 terms."""
    out = []
    for m in mappings:
        if not isinstance(m, dict):
            raise BadRequest(f"{INVALID}: each block device mapping must be an object.")
        if m.get("no_device"):
            continue
        device = str(m.get("device_name") or "")
        root = not has_image and device.rsplit("/", 1)[-1] in ("vda", "sda", "xvda")
        if m.get("volume_id"):
            source, uuid = "volume", m["volume_id"]
        elif m.get("snapshot_id"):
            source, uuid = "snapshot", m["snapshot_id"]
        else:
            raise BadRequest(f"{INVALID}: a legacy mapping needs volume_id or snapshot_id.")
        out.append({"source_type": source, "destination_type": "volume", "uuid": uuid,
                    "volume_size": m.get("volume_size"), "device_name": m.get("device_name"),
                    "delete_on_termination": m.get("delete_on_termination", False), "boot_index": 0 if root else None})
    return out


async def image_defined(image_ref: Any, images: Any, image_caller: Any) -> list[dict[str, Any]]:
    """The block devices an image defines (its ``block_device_mapping`` property, in the v2 form
    when ``bdm_v2`` says so, else the legacy one): a volume-backed server's snapshot names the
    volume snapshots a server made from it boots from.  None for an image without them (or one
    the caller cannot see: the create's image check says so)."""
    if not isinstance(image_ref, str) or not image_ref or images is None:
        return []
    try:
        image = await images.image_info(image_ref.rsplit("/", 1)[-1], image_caller)
    except NotFound:
        return []
    value = (image.properties or {}).get("block_device_mapping")
    if not value:
        return []
    try:
        defined = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        raise BadRequest(f"{INVALID}: the block_device_mapping of image {image.id} is not JSON.") from None
    if not isinstance(defined, list) or not all(isinstance(m, dict) for m in defined):
        raise BadRequest(f"{INVALID}: the block_device_mapping of image {image.id} must be a list of objects.")
    if _truthy((image.properties or {}).get("bdm_v2")):
        return [m for m in defined if not m.get("no_device")]
    return legacy(defined, has_image=False)


async def parse(data: dict[str, Any], manager: Any, who: Any, images: Any, image_caller: Any,
                count: int) -> tuple[str | None, list[dict[str, Any]]]:
    """The image a server boots from (if any) and its volume mappings, each checked: the volume,
    snapshot or image must exist for the caller, a volume must be available, sizes given where
    a new volume needs one."""
    image_ref = data.get("imageRef") or None
    mappings = data.get("block_device_mapping_v2")
    if mappings is not None and not isinstance(mappings, list):
        raise BadRequest("block_device_mapping_v2 must be a list.")
    old = data.get("block_device_mapping")
    if old is not None and not isinstance(old, list):
        raise BadRequest("block_device_mapping must be a list.")
    if mappings and old:
        raise BadRequest("Using different block_device_mapping syntaxes is not allowed.")
    mappings = mappings or legacy(old or [], bool(image_ref))
    defined = await image_defined(image_ref, images, image_caller)
    root_in_image = any(_boot_index(m.get("boot_index")) == 0 for m in defined)
    if root_in_image:  # the image's root volume replaces the image's own mapping a client may add
        mappings = [m for m in mappings if not (isinstance(m, dict) and m.get("source_type") == "image"
                                                and _boot_index(m.get("boot_index")) == 0)]
    names = {m.get("device_name") for m in mappings if isinstance(m, dict) and m.get("device_name")}
    mappings = [*mappings, *(m for m in defined if m.get("device_name") not in names)]
    volumes: list[dict[str, Any]] = []
    for m in mappings:
        if not isinstance(m, dict):
            raise BadRequest(f"{INVALID}: each block device mapping must be an object.")
        source, dest = m.get("source_type"), m.get("destination_type") or "local"
        index = _boot_index(m.get("boot_index"))
        if dest == "local":
            if source == "image" and index == 0:
                image_ref = image_ref or m.get("uuid")
            elif source != "blank":  # blank local disks: the flavor's ephemeral and swap
                raise BadRequest(f"{INVALID}: source_type {source!r} with destination_type local is not "
                                 "supported.")
            continue
        if dest != "volume":
            raise BadRequest(f"{INVALID}: destination_type must be local or volume, not {dest!r}.")
        if source not in ("volume", "image", "snapshot", "blank"):
            raise BadRequest(f"{INVALID}: source_type must be volume, image, snapshot or blank, not {source!r}.")
        uuid = m.get("uuid") or m.get(f"{source}_id")
        if source != "blank" and not isinstance(uuid, str):
            raise BadRequest(f"{INVALID}: a mapping of source_type {source} needs the uuid of its source.")
        size = _size(m.get("volume_size"), f"the {source} mapping")
        if source in ("image", "blank") and size is None:
            raise BadRequest(f"{INVALID}: a new volume from {'an image' if source == 'image' else 'nothing'} "
                             "needs a non-zero volume_size.")
        volumes.append({"source_type": source, "uuid": uuid, "volume_size": size, "boot_index": index,
                        "delete_on_termination": _truthy(m.get("delete_on_termination", False)),
                        "device_name": m.get("device_name"), "tag": m.get("tag"),
                        "volume_type": m.get("volume_type")})
    if not volumes:
        return image_ref, []
    if manager.volumes is None:
        raise BadRequest("Block devices on volumes need the block storage service, which this cloud does not run: "
                         "boot from an image (imageRef).")
    if len(volumes) > MAX_VOLUMES:
        raise BadRequest(f"{INVALID}: a server holds at most {MAX_VOLUMES} volumes.")
    if sum(1 for v in volumes if v["boot_index"] == 0) > 1 or (image_ref and not root_in_image and any(
            v["boot_index"] == 0 for v in volumes)):
        raise BadRequest(f"{INVALID}: only one device can boot (boot_index 0).")
    for v in volumes:
        if v["source_type"] == "volume":
            if count > 1:
                raise BadRequest("Cannot attach one or more volumes to multiple instances.")
            try:
                vol = await manager.volumes.volume(v["uuid"], who)
            except NotFound:
                raise BadRequest(f"{INVALID}: failed to get volume {v['uuid']}.") from None
            if vol.status != "available":
                raise BadRequest(f"{INVALID}: volume {vol.id} status must be available, not {vol.status}.")
            if v["boot_index"] == 0 and not vol.bootable:  # Nova's InvalidBDMVolumeNotBootable
                raise BadRequest(f"Block Device {vol.id} is not bootable: set it bootable "
                                 "(openstack volume set --bootable) if it holds a bootable disk.")
            v["volume_size"] = vol.size
        elif v["source_type"] == "snapshot":
            try:
                snap = await manager.volumes.snapshot(v["uuid"], who)
            except NotFound:
                raise BadRequest(f"{INVALID}: failed to get snapshot {v['uuid']}.") from None
            if snap.status != "available":
                raise BadRequest(f"{INVALID}: snapshot {snap.id} status must be available, not {snap.status}.")
            v["volume_size"] = v["volume_size"] or snap.size
        elif v["source_type"] == "image" and images is not None:
            try:
                image = await images.image_info(v["uuid"], image_caller)
            except NotFound:
                raise BadRequest(f"{INVALID}: image {v['uuid']} could not be found.") from None
            if image.status != "active":
                raise BadRequest(f"{INVALID}: image {image.id} is not active.")
    return image_ref, volumes
