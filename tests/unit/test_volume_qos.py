"""QoS limits from the connection info to QEMU's throttle: only what QEMU accepts reaches it (so a
volume always attaches), the filter keeps the volume's node name, and the API's checks and
Cinder's per-GiB arithmetic."""

from __future__ import annotations

from typing import Any

import pytest

from cumulo.compute.virt.qemu.volumes import blockdev, node_name, throttle_args, throttle_limits, volume_args
from cumulo.core.http.faults import BadRequest
from cumulo.volume.qos import applied_limits, checked_specs

VID = "12345678-1234-1234-1234-123456789abc"


def volume(qos: Any) -> dict[str, Any]:
    return {"volume_id": VID, "slot": 0, "connection_info": {"driver_volume_type": "file", "data": {
        "path": "/v.qcow2", "format": "qcow2", "access_mode": "rw", "qos_specs": qos}}}


@pytest.mark.parametrize("qos, limits", [
    (None, {}), ({}, {}), ("junk", {}), ({"write_iops_sec": "0"}, {}), ({"write_iops_sec": "x"}, {}),
    ({"write_iops_sec": "100"}, {"iops-write": 100}),
    ({"read_bytes_sec": 1048576, "vendor": "v"}, {"bps-read": 1048576}),
    # a burst only above its rate, its length only with it
    ({"total_iops_sec": "100", "total_iops_sec_max": "50"}, {"iops-total": 100}),
    ({"total_iops_sec": "100", "total_iops_sec_max": "500", "total_iops_sec_max_length": "10"},
     {"iops-total": 100, "iops-total-max": 500, "iops-total-max-length": 10}),
    ({"total_iops_sec_max": "500"}, {}),
    # a total limit wins over read/write ones of its kind (QEMU refuses both), not over the other kind
    ({"total_bytes_sec": "9", "write_bytes_sec": "5", "read_iops_sec": "7"}, {"bps-total": 9, "iops-read": 7}),
    ({"size_iops_sec": "4096"}, {}),
    ({"size_iops_sec": "4096", "write_iops_sec": "10"}, {"iops-write": 10, "iops-size": 4096}),
    ({"write_iops_sec": str(10**16)}, {}),
])
def test_throttle_limits_keep_only_what_qemu_accepts(qos: Any, limits: dict[str, int]) -> None:
    assert throttle_limits(volume(qos)) == limits


def test_a_throttled_volume_keeps_its_node_name_over_the_format_node() -> None:
    v = volume({"write_iops_sec": "100"})
    group, top = throttle_args(v, blockdev(v))
    assert group == {"qom-type": "throttle-group", "id": "tg" + VID.replace("-", "")[:28],
                     "limits": {"iops-write": 100}}
    assert top["driver"] == "throttle" and top["node-name"] == node_name(VID) and top["throttle-group"] == group["id"]
    assert top["file"]["driver"] == "qcow2" and top["file"]["node-name"] != node_name(VID)
    assert len(top["file"]["node-name"]) <= 31 and len(group["id"]) <= 31
    args = volume_args([v])
    assert args[0] == "-object" and args.index("-object") < args.index("-blockdev")
    plain = volume(None)
    assert throttle_args(plain, blockdev(plain)) == (None, blockdev(plain))
    assert "-object" not in volume_args([plain])


def test_the_api_refuses_limits_that_are_not_non_negative_integers() -> None:
    assert checked_specs({"consumer": "both", "write_iops_sec": 100, "x": "y"}) == (
        "both", {"write_iops_sec": "100", "x": "y"})
    for bad in ({"write_iops_sec": "-1"}, {"read_bytes_sec": "1.5"}, {"total_iops_sec_max": True},
                {"consumer": "nobody"}, {"k": None}, {"total_bytes_sec": str(10**15 + 1)}):
        with pytest.raises(BadRequest):
            checked_specs(bad)


def test_per_gib_limits_scale_with_the_size_between_min_and_max() -> None:
    specs = {"write_iops_sec_per_gb": "10", "write_iops_sec_per_gb_min": "50", "write_iops_sec_max": "300",
             "read_bytes_sec": "7"}
    assert applied_limits(specs, 2) == {"write_iops_sec": "50", "read_bytes_sec": "7"}
    assert applied_limits(specs, 20) == {"write_iops_sec": "200", "read_bytes_sec": "7"}
    assert applied_limits(specs, 200) == {"write_iops_sec": "300", "read_bytes_sec": "7"}
    assert specs["write_iops_sec_max"] == "300"  # the stored specs are not changed
