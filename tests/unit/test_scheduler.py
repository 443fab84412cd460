"""The scheduler pipeline: each filter, the no-valid-host explanation, spreading and packing."""

from __future__ import annotations

import pytest

from cumulo.compute.scheduler import weighers
from cumulo.compute.scheduler.scheduler import NoValidHost, Scheduler
from cumulo.compute.scheduler.state import HostState, RequestSpec


def host(name: str, **kw) -> HostState:  # type: ignore[no-untyped-def]
    base = dict(node=f"n-{name}", vcpus=16, vcpus_free=16, ram_mb_free=4096, disk_gb_free=100)
    base.update(kw)
    return HostState(host=name, **base)  # type: ignore[arg-type]


def spec(**kw) -> RequestSpec:  # type: ignore[no-untyped-def]
    base = dict(vcpus=1, ram_mb=512, disk_gb=1)
    base.update(kw)
    return RequestSpec(**base)  # type: ignore[arg-type]


def test_no_valid_host_says_what_each_filter_removed() -> None:
    hosts = [host("a", zone="az1"), host("b", zone="az1"), host("c", zone="az2", ram_mb_free=100)]
    with pytest.raises(NoValidHost) as exc:
        Scheduler().select(hosts, spec(zone="az2"))
    assert str(exc.value) == ("No valid host was found. 3 hosts; AvailabilityZoneFilter removed 2, "
                              "RamFilter removed 1.")
    assert exc.value.public_message == "No valid host was found."


@pytest.mark.parametrize("bad,good,request_kw", [
    ({"enabled": False}, {}, {}),
    ({"up": False}, {}, {}),
    ({"zone": "other"}, {"zone": "az"}, {"zone": "az"}),
    ({"arch": "aarch64"}, {}, {"image_properties": {"hw_architecture": "x86_64"}}),
    ({"hypervisor_type": "fake"}, {"hypervisor_type": "qemu"}, {"image_properties": {"img_hv_type": "qemu"}}),
    ({"aggregate_metadata": {"ssd": {"false"}}}, {"aggregate_metadata": {"ssd": {"true"}}},
     {"flavor_extra_specs": {"aggregate_instance_extra_specs:ssd": "true"}}),
    ({"instances": {"s1"}}, {}, {"group_policy": "anti-affinity", "group_members": {"s1"}}),
    ({}, {"instances": {"s1"}}, {"group_policy": "affinity", "group_members": {"s1"}}),
    ({"vcpus_free": 0}, {}, {}),
    ({"disk_gb_free": 0}, {}, {}),
])
def test_each_filter_removes_the_host_it_should(bad, good, request_kw) -> None:  # type: ignore[no-untyped-def]
    chosen = Scheduler().select([host("bad", **bad), host("good", **good)], spec(**request_kw))
    assert [h.host for h in chosen] == ["good"]


def test_anti_affinity_rule_allows_up_to_max_per_host() -> None:
    s = spec(group_policy="anti-affinity", group_members={"s1", "s2"}, group_max_per_host=2)
    assert Scheduler().select([host("a", instances={"s1"})], s)
    with pytest.raises(NoValidHost):
        Scheduler().select([host("a", instances={"s1", "s2"})], s)


def test_spread_prefers_free_hosts_and_pack_prefers_full_ones() -> None:
    hosts = [host("busy", ram_mb_free=1024, vcpus_free=2, disk_gb_free=10), host("idle")]
    assert [h.host for h in Scheduler().select(hosts, spec())] == ["idle", "busy"]
    packed = Scheduler(multipliers=dict(weighers.PACK)).select(hosts, spec())
    assert [h.host for h in packed] == ["busy", "idle"]


def test_soft_anti_affinity_prefers_hosts_without_members() -> None:
    hosts = [host("a", instances={"s1"}), host("b")]
    s = spec(group_policy="soft-anti-affinity", group_members={"s1"})
    only = {"ServerGroupSoftAntiAffinityWeigher": 1.0}
    assert Scheduler(multipliers=only).select(hosts, s)[0].host == "b"


def test_unknown_filter_names_are_refused() -> None:
    with pytest.raises(ValueError):
        Scheduler(filter_names=["NoSuchFilter"])
