"""cumulo/ops/exporter.py without a cloud: Ceilometer's meters from a QEMU node's diagnostics (the
shape cumulo/compute/virt/qemu/extras.py returns), openstack-exporter's status numbers, and the
operator app's /metrics with the kept rendering appended."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from cumulo.ops.exporter import SERVER_STATUS, VOLUME_STATUS, CloudExporter, ceilometer_families, render, server_status

QEMU_DIAGNOSTICS = {"standard": {
    "state": "running", "num_cpus": 2, "memory_details": {"maximum": 256, "used": 200},
    "cpu_details": [{"id": 0, "time": 1_500_000_000, "utilisation": None},
                    {"id": 1, "time": 500_000_000, "utilisation": None}],
    "disk_details": [{"read_bytes": 4096, "read_requests": 2, "write_bytes": 8192, "write_requests": 3,
                      "errors_count": 0},
                     {"read_bytes": 10, "read_requests": 1, "write_bytes": 0, "write_requests": 0, "errors_count": 0}],
    "nic_details": [{"mac_address": "fa:16:3e:00:00:01", "rx_octets": 1000, "rx_packets": 10, "tx_octets": 500,
                     "tx_packets": 5}]}}


def samples(text: bytes) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def test_meters_carry_ceilometers_names_units_and_resource_ids() -> None:
    server = SimpleNamespace(id="srv", project_id="proj", user_id="u",
                             flavor={"vcpus": 2, "ram": 256, "disk": 1, "ephemeral": 0})
    got = samples(render(ceilometer_families([(server, QEMU_DIAGNOSTICS)])))
    assert got["ceilometer_cpu"] == [({"resource_id": "srv", "project_id": "proj"}, 2_000_000_000)]  # ns, summed
    assert got["ceilometer_vcpus"][0][1] == 2 and got["ceilometer_memory"][0][1] == 256
    assert got["ceilometer_memory_usage"][0][1] == 200  # MB, the balloon's
    reads = dict((lv["resource_id"], v) for lv, v in got["ceilometer_disk_device_read_bytes"])
    assert reads == {"srv-vda": 4096, "srv-vdb": 10}
    assert all(lv["instance_id"] == "srv" for lv, _ in got["ceilometer_disk_device_write_requests"])
    assert got["ceilometer_network_incoming_bytes"] == [
        ({"resource_id": "srv-fa163e000001", "project_id": "proj", "instance_id": "srv"}, 1000)]
    assert got["ceilometer_network_outgoing_packets"][0][1] == 5


def test_a_server_without_diagnostics_has_only_its_flavors_meters() -> None:
    server = SimpleNamespace(id="s2", project_id="p", user_id="u", flavor='{"vcpus": 1, "ram": 128, "disk": 1}')
    got = samples(render(ceilometer_families([(server, None)])))
    assert "ceilometer_cpu" not in got and got["ceilometer_vcpus"][0][1] == 1


def test_status_numbers_are_openstack_exporters() -> None:
    assert SERVER_STATUS["ACTIVE"] == 0 and SERVER_STATUS["SHUTOFF"] == 11 and SERVER_STATUS["SOFT_DELETED"] == 20
    assert VOLUME_STATUS["available"] == 1 and VOLUME_STATUS["in-use"] == 5 and VOLUME_STATUS["extending"] == 19
    assert server_status("active", "resize_migrating") == "RESIZE"
    assert server_status("stopped", None) == "SHUTOFF" and server_status("resized", None) == "VERIFY_RESIZE"


def test_metrics_gets_the_kept_rendering_appended_and_only_while_the_lease_is_held() -> None:
    held = [True]
    exporter = CloudExporter(db=None, held=lambda: held[0])
    exporter.rendered = b"# TYPE openstack_nova_total_vms gauge\nopenstack_nova_total_vms 3.0\n"
    exporter.refreshed_at = 1.0

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = b"cumulo_http_requests_total 1.0\n"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def get() -> tuple[dict[str, Any], bytes]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
        await exporter.wrap(app)({"type": "http", "path": "/metrics", "method": "GET"}, None, send)
        return sent[0], sent[1]["body"]

    start, body = asyncio.run(get())
    got = samples(body)
    assert got["openstack_nova_total_vms"][0][1] == 3 and got["cumulo_http_requests_total"][0][1] == 1
    assert dict(start["headers"])[b"content-length"] == str(len(body)).encode()
    assert got["cumulo_exporter_age_seconds"][0][1] > 0
    held[0] = False  # another controller holds the lease: it exports the cloud's figures, not this one
    _, body = asyncio.run(get())
    assert b"openstack_nova_total_vms" not in body
