"""Block devices an image defines (a volume-backed server's snapshot): they join a create's own
mappings, the request wins on the same device name, an image root replaces a client's image
mapping, and what an image of a volume-backed server records is Nova's v2 form."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from cumulo.compute.api.block_devices import image_defined, parse
from cumulo.compute.servers.volume_backed import IMAGE_MAPPING_FIELDS, image_mapping
from cumulo.core.http.faults import BadRequest, NotFound

SNAP, IMAGE = "5" * 8 + "-0000-0000-0000-" + "0" * 12, "1" * 8 + "-0000-0000-0000-" + "0" * 12


def snapshot_mapping(**extra: Any) -> dict[str, Any]:
    return {"source_type": "snapshot", "destination_type": "volume", "snapshot_id": SNAP, "volume_size": 1,
            "boot_index": 0, "device_name": "/dev/vda", "delete_on_termination": True, "volume_id": None, **extra}


class Images:
    def __init__(self, properties: dict[str, Any]) -> None:
        self.properties = properties

    async def image_info(self, image_id: str, who: Any) -> Any:
        if image_id != IMAGE:
            raise NotFound("no such image")
        return SimpleNamespace(id=IMAGE, status="active", properties=self.properties)


class Volumes:
    async def snapshot(self, snapshot_id: str, who: Any) -> Any:
        return SimpleNamespace(id=snapshot_id, status="available", size=1)

    async def volume(self, volume_id: str, who: Any) -> Any:
        return SimpleNamespace(id=volume_id, status="available", size=2)


MANAGER = SimpleNamespace(volumes=Volumes())


async def test_an_image_of_a_volume_backed_server_makes_the_server_boot_from_its_snapshot() -> None:
    images = Images({"block_device_mapping": json.dumps([snapshot_mapping()]), "bdm_v2": "True"})
    ref, volumes = await parse({"imageRef": IMAGE}, MANAGER, None, images, None, 1)
    assert ref == IMAGE
    assert [(v["source_type"], v["uuid"], v["boot_index"], v["volume_size"], v["delete_on_termination"])
            for v in volumes] == [("snapshot", SNAP, 0, 1, True)]


async def test_the_request_wins_on_a_device_name_and_an_image_root_replaces_the_clients() -> None:
    data = snapshot_mapping(boot_index=None, device_name="/dev/vdb", snapshot_id="data-snap")
    images = Images({"block_device_mapping": json.dumps([snapshot_mapping(), data]), "bdm_v2": "True"})
    ref, volumes = await parse({"imageRef": IMAGE, "block_device_mapping_v2": [
        {"source_type": "image", "destination_type": "local", "boot_index": 0, "uuid": IMAGE},
        {"source_type": "volume", "destination_type": "volume", "uuid": "vol-1", "device_name": "/dev/vdb"}]},
        MANAGER, None, images, None, 1)
    assert ref == IMAGE
    assert [(v["source_type"], v["uuid"]) for v in volumes] == [("volume", "vol-1"), ("snapshot", SNAP)]


async def test_image_defined_mappings_in_the_legacy_form_and_the_faults() -> None:
    legacy = Images({"block_device_mapping": [{"device_name": "/dev/vda", "snapshot_id": SNAP, "volume_size": 1}]})
    assert [(m["source_type"], m["uuid"], m["boot_index"]) for m in await image_defined(IMAGE, legacy, None)] == [
        ("snapshot", SNAP, 0)]
    assert await image_defined(IMAGE, Images({}), None) == []
    assert await image_defined("not-there", legacy, None) == []
    with pytest.raises(BadRequest, match="not JSON"):
        await image_defined(IMAGE, Images({"block_device_mapping": "[{", "bdm_v2": "True"}), None)
    with pytest.raises(BadRequest, match="list of objects"):
        await image_defined(IMAGE, Images({"block_device_mapping": '{"a": 1}', "bdm_v2": "True"}), None)


def test_a_snapshot_image_records_each_volume_in_novas_v2_form() -> None:
    row = SimpleNamespace(boot_index=0, device_name="/dev/vda", delete_on_termination=True)
    m = image_mapping(row, SNAP, 3)  # type: ignore[arg-type]
    assert set(m) == set(IMAGE_MAPPING_FIELDS) and "connection_info" not in m
    assert (m["source_type"], m["destination_type"], m["snapshot_id"], m["volume_size"], m["boot_index"],
            m["device_name"], m["delete_on_termination"], m["volume_id"], m["tag"]) == (
        "snapshot", "volume", SNAP, 3, 0, "/dev/vda", True, None, None)
