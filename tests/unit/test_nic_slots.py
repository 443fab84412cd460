"""The QEMU driver's NICs on PCIe root ports of their own: which port each NIC sits on stays
fixed from its first start through hot-plugs, unplugs and live migrations."""

from __future__ import annotations

from cumulo.compute.virt.qemu.extras import NIC_PORTS, keep_slots, nic_args, nic_slots


def ports(*ids: str, **slots: int | None) -> list[dict]:
    return [{"id": i, "mac_address": "fa:16:3e:00:00:01", **({"slot": slots[i]} if i in slots else {})} for i in ids]


def test_boot_ports_take_the_root_ports_in_order() -> None:
    assert nic_slots(ports("a", "b", "c")) == [0, 1, 2]


def test_a_port_keeps_its_root_port_and_new_ones_fill_the_gaps() -> None:
    # b (on np1) was unplugged: c stays on np2, a new port takes np1
    assert nic_slots(ports("a", "c", "d", a=0, c=2)) == [0, 2, 1]


def test_past_the_last_root_port_a_nic_sits_on_the_root_bus() -> None:
    many = ports(*[f"p{n}" for n in range(NIC_PORTS + 1)])
    slots = nic_slots(many)
    assert slots[:NIC_PORTS] == list(range(NIC_PORTS)) and slots[-1] is None
    assert "bus=" not in nic_args(many[-1], 5, None)[3]
    assert nic_args(many[0], 5, 0)[3].endswith(",bus=np0") and "fd=5" in nic_args(many[0], 5, 0)[1]


def test_a_live_migration_destination_uses_the_source_root_ports() -> None:
    source = [{"id": "a", "slot": 0}, {"id": "c", "slot": 2}, {"id": "d", "slot": 1}]
    moved = keep_slots(ports("a", "d", "c"), source)  # listed in another order by the controller
    assert nic_slots(moved) == [0, 1, 2] and [p["id"] for p in moved] == ["a", "d", "c"]
    assert nic_slots(keep_slots(ports("a", "d", "c"), None)) == [0, 1, 2]
