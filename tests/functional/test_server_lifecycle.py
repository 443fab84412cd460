"""The server lifecycle on fake nodes through openstacksdk, the CLI and plain HTTP: resize with
confirm and revert, cold and live migration, evacuation from a host that is down, rebuild,
snapshots into the image service, shelve/unshelve, console output, reset-state, tags, update,
instance actions, os-migrations, usage, list filters and paging, and the node reconcile that
destroys instances nothing owns."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from tests.functional.conftest import Cloud, start_cloud, stop_cloud, unique
from tests.functional.test_servers import create, h, image_id, wait_status


def boot(cloud: Cloud, token: str, flavor: str = "10", version: str = "2.47", **extra: Any) -> dict:
    r = create(cloud, token, flavor=flavor, **extra)
    assert r.status_code == 202, r.text
    server = wait_status(cloud, token, r.json()["server"]["id"], "ACTIVE")
    assert server["status"] == "ACTIVE", server
    return server


def act(cloud: Cloud, token: str, server_id: str, body: dict, version: str = "2.47") -> httpx.Response:
    return httpx.post(f"{cloud.compute_url}/servers/{server_id}/action", headers=h(token, version), json=body)


def allocations(cloud: Cloud, token: str, consumer: str) -> dict:
    r = httpx.get(f"{cloud.placement_url}/allocations/{consumer}", headers={"X-Auth-Token": token})
    return {rp: a["resources"] for rp, a in r.json()["allocations"].items()}


def show(cloud: Cloud, token: str, server_id: str, version: str = "2.47") -> dict:
    return dict(httpx.get(f"{cloud.compute_url}/servers/{server_id}", headers=h(token, version)).json()["server"])


def test_resize_confirm_and_revert_keep_placement_exact(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    conn = cloud.sdk()
    server = boot(cloud, token)
    conn.compute.resize_server(server["id"], "11")
    shown = wait_status(cloud, token, server["id"], "VERIFY_RESIZE")
    assert shown["status"] == "VERIFY_RESIZE" and shown["flavor"]["ram"] == 256
    # both sides stay claimed until the resize is confirmed: the server's new size, and the
    # migration holding the old one
    migration = httpx.get(f"{cloud.compute_url}/os-migrations?instance_uuid={server['id']}",
                          headers=h(token, "2.59")).json()["migrations"][0]
    assert migration["migration_type"] == "resize" and migration["status"] == "finished"
    assert list(allocations(cloud, token, server["id"]).values()) == [{"VCPU": 1, "MEMORY_MB": 256, "DISK_GB": 1}]
    assert list(allocations(cloud, token, migration["uuid"]).values()) == [
        {"VCPU": 1, "MEMORY_MB": 128, "DISK_GB": 1}]
    conn.compute.revert_server_resize(server["id"])
    shown = wait_status(cloud, token, server["id"], "ACTIVE")
    assert shown["flavor"]["ram"] == 128 and shown["OS-EXT-SRV-ATTR:host"] == server["OS-EXT-SRV-ATTR:host"]
    assert list(allocations(cloud, token, server["id"]).values()) == [{"VCPU": 1, "MEMORY_MB": 128, "DISK_GB": 1}]
    assert allocations(cloud, token, migration["uuid"]) == {}
    # now confirm one, through the CLI
    cloud.cli("server", "resize", "--flavor", "cumulo.micro", "--wait", server["id"])
    assert wait_status(cloud, token, server["id"], "VERIFY_RESIZE")["status"] == "VERIFY_RESIZE"
    cloud.cli("server", "resize", "confirm", server["id"])
    shown = wait_status(cloud, token, server["id"], "ACTIVE")
    assert shown["flavor"]["ram"] == 256
    assert [m["status"] for m in httpx.get(f"{cloud.compute_url}/os-migrations?instance_uuid={server['id']}",
                                           headers=h(token)).json()["migrations"]] == ["confirmed", "reverted"]
    assert sum(len(allocations(cloud, token, m["uuid"])) for m in conn.compute.migrations()) == 0
    # bad resizes: same flavor, no flavor, unknown flavor, smaller disk
    for body, status in (({"resize": {"flavorRef": "11"}}, 400), ({"resize": {"flavorRef": None}}, 400),
                         ({"resize": {"flavorRef": "no-such"}}, 400), ({"resize": {}}, 400),
                         ({"confirmResize": None}, 409), ({"revertResize": None}, 409)):
        r = act(cloud, token, server["id"], body)
        assert r.status_code == status, (body, r.text)
    actions = [a["action"] for a in httpx.get(f"{cloud.compute_url}/servers/{server['id']}/os-instance-actions",
                                              headers=h(token)).json()["instanceActions"]]
    assert actions == ["confirmResize", "resize", "revertResize", "resize", "create"]
    conn.compute.delete_server(server["id"])


def test_cold_and_live_migration_move_the_claim(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    conn = cloud.sdk()
    server = boot(cloud, token)
    source = server["OS-EXT-SRV-ATTR:host"]
    node_of = {p["name"]: p["uuid"] for p in httpx.get(f"{cloud.placement_url}/resource_providers",
                                                      headers={"X-Auth-Token": token}).json()["resource_providers"]}
    conn.compute.live_migrate_server(server["id"], host=None, block_migration="auto")
    deadline = time.monotonic() + 20
    while show(cloud, token, server["id"])["OS-EXT-SRV-ATTR:host"] == source and time.monotonic() < deadline:
        time.sleep(0.2)
    moved = wait_status(cloud, token, server["id"], "ACTIVE")
    dest = moved["OS-EXT-SRV-ATTR:host"]
    assert dest != source and moved["OS-EXT-STS:task_state"] is None
    assert list(allocations(cloud, token, server["id"])) == [node_of[dest]]
    live = [m for m in conn.compute.migrations() if m.server_id == server["id"]]
    assert [(m.migration_type, m.status, m.source_compute, m.dest_compute) for m in live] == [
        ("live-migration", "completed", source, dest)]
    # cold migration back, confirmed: the server ends on the first host with one claim
    cloud.cli("server", "migrate", "--wait", server["id"])
    assert wait_status(cloud, token, server["id"], "VERIFY_RESIZE")["OS-EXT-SRV-ATTR:host"] == source
    assert act(cloud, token, server["id"], {"confirmResize": None}).status_code == 204
    assert wait_status(cloud, token, server["id"], "ACTIVE")["OS-EXT-SRV-ATTR:host"] == source
    assert list(allocations(cloud, token, server["id"])) == [node_of[source]]
    # members may not move servers; a forced host that does not exist is refused
    demo, _ = cloud.token("demo", cloud.demo_password, "demo")
    mine = boot(cloud, demo)
    for body in ({"migrate": None}, {"os-migrateLive": {"host": None, "block_migration": "auto"}},
                 {"os-resetState": {"state": "error"}}, {"evacuate": {}}):
        assert act(cloud, demo, mine["id"], body, "2.56").status_code == 403, body
    r = act(cloud, token, server["id"], {"migrate": {"host": "no-such-host"}}, "2.56")
    assert r.status_code == 400 and "No valid host" in r.json()["badRequest"]["message"]
    assert show(cloud, token, server["id"])["status"] == "ACTIVE"
    for sid, tok in ((server["id"], token), (mine["id"], demo)):
        httpx.delete(f"{cloud.compute_url}/servers/{sid}", headers=h(tok))


def test_rebuild_snapshot_shelve_console(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    conn = cloud.sdk()
    server = boot(cloud, token, metadata={"a": "1"})
    image = image_id(cloud, token)
    # rebuild with a new name and metadata; the response carries the server and an admin password
    r = act(cloud, token, server["id"], {"rebuild": {"imageRef": image, "name": "rebuilt", "metadata": {"b": "2"},
                                                    "adminPass": "s3cret"}})
    assert r.status_code == 202 and r.json()["server"]["adminPass"] == "s3cret", r.text
    shown = wait_status(cloud, token, server["id"], "ACTIVE")
    assert shown["name"] == "rebuilt" and shown["metadata"] == {"b": "2"}
    assert act(cloud, token, server["id"], {"rebuild": {"imageRef": "no-such-image"}}).status_code == 400
    # the console shows the boot and the rebuild, and length trims it
    out = conn.compute.get_server_console_output(server["id"])["output"]
    assert "ready" in out and "rebuilt from image" in out
    assert len(conn.compute.get_server_console_output(server["id"], length=1)["output"].splitlines()) == 1
    # a snapshot lands in the image service as an active private image of the server's project
    snap = conn.compute.create_server_image(server["id"], name="snap-\u00e9\u6f22", wait=True, timeout=30)
    got = httpx.get(f"{cloud.image_url}/v2/images/{snap.id}", headers={"X-Auth-Token": token}).json()
    assert got["status"] == "active" and got["instance_uuid"] == server["id"] and got["image_type"] == "snapshot"
    assert got["name"] == "snap-\u00e9\u6f22" and got["size"] > 0
    # and a server boots from it
    from_snap = boot(cloud, token, imageRef=snap.id)
    assert from_snap["image"]["id"] == snap.id
    # shelve: the host is freed; unshelve: placed again, the shelved image is removed
    cloud.cli("server", "shelve", "--wait", server["id"])
    shelved = wait_status(cloud, token, server["id"], "SHELVED_OFFLOADED")
    assert shelved["status"] == "SHELVED_OFFLOADED" and shelved["OS-EXT-SRV-ATTR:host"] is None
    assert allocations(cloud, token, server["id"]) == {}
    shelved_images = httpx.get(f"{cloud.image_url}/v2/images?name=rebuilt-shelved",
                               headers={"X-Auth-Token": token}).json()["images"]
    assert [i["status"] for i in shelved_images] == ["active"]
    assert act(cloud, token, server["id"], {"os-getConsoleOutput": {}}).status_code == 409
    cloud.cli("server", "unshelve", "--wait", server["id"])
    back = wait_status(cloud, token, server["id"], "ACTIVE")
    assert back["OS-EXT-SRV-ATTR:host"] and allocations(cloud, token, server["id"])
    assert httpx.get(f"{cloud.image_url}/v2/images/{shelved_images[0]['id']}",
                     headers={"X-Auth-Token": token}).status_code == 404
    events = httpx.get(f"{cloud.compute_url}/servers/{server['id']}/os-instance-actions/"
                       f"{r.headers['x-openstack-request-id']}", headers=h(token, "2.62")).json()["instanceAction"]
    assert events["action"] == "rebuild" and [e["result"] for e in events["events"]] == ["Success"]
    for sid in (server["id"], from_snap["id"]):
        conn.compute.delete_server(sid)
    conn.image.delete_image(snap.id)


def test_reset_state_tags_update_and_filters(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    a = boot(cloud, token, flavor="10", version="2.52")
    b = boot(cloud, token, flavor="11")
    sid = a["id"]
    # tags (2.26+)
    v = "2.26"
    assert httpx.put(f"{cloud.compute_url}/servers/{sid}/tags", headers=h(token, v),
                     json={"tags": ["red", "blue"]}).json() == {"tags": ["blue", "red"]}
    assert httpx.put(f"{cloud.compute_url}/servers/{sid}/tags/green", headers=h(token, v)).status_code == 201
    assert httpx.put(f"{cloud.compute_url}/servers/{sid}/tags/green", headers=h(token, v)).status_code == 204
    r = httpx.put(f"{cloud.compute_url}/servers/{sid}/tags/%C3%A9%E4%B8%AD", headers=h(token, v))  # "é中"
    assert r.status_code == 201 and r.headers["Location"].endswith("/tags/%C3%A9%E4%B8%AD"), r.text
    assert "é中" in show(cloud, token, sid, v)["tags"]
    r = httpx.delete(f"{cloud.compute_url}/servers/{sid}/tags/%C3%A9%E4%B8%AD", headers=h(token, v))
    assert r.status_code == 204
    assert httpx.get(f"{cloud.compute_url}/servers/{sid}/tags/green", headers=h(token, v)).status_code == 204
    assert httpx.get(f"{cloud.compute_url}/servers/{sid}/tags/nope", headers=h(token, v)).status_code == 404
    assert httpx.put(f"{cloud.compute_url}/servers/{sid}/tags", headers=h(token, v),
                     json={"tags": ["a,b"]}).status_code == 400
    tagged = httpx.get(f"{cloud.compute_url}/servers?tags=red,green", headers=h(token, v)).json()["servers"]
    assert [s["id"] for s in tagged] == [sid]
    assert sid not in [s["id"] for s in httpx.get(f"{cloud.compute_url}/servers?not-tags-any=red",
                                                    headers=h(token, v)).json()["servers"]]
    assert httpx.delete(f"{cloud.compute_url}/servers/{sid}/tags", headers=h(token, v)).status_code == 204
    assert show(cloud, token, sid, v)["tags"] == []
    # update: name, access addresses, description
    r = httpx.put(f"{cloud.compute_url}/servers/{sid}", headers=h(token, "2.19"), json={"server": {
        "name": "renamed", "accessIPv4": "192.0.2.7", "accessIPv6": "2001:db8::7", "description": "d"}})
    assert r.status_code == 200 and r.json()["server"]["accessIPv6"] == "2001:db8::7", r.text
    assert r.json()["server"]["description"] == "d"
    for body in ({"name": ""}, {"name": "x" * 256}, {"accessIPv6": "not-an-address"}, {"bogus": 1}):
        r = httpx.put(f"{cloud.compute_url}/servers/{sid}", headers=h(token), json={"server": body})
        assert r.status_code == 400, (body, r.text)
    assert httpx.put(f"{cloud.compute_url}/servers/{'0' * 36}", headers=h(token),
                     json={"server": {"name": "x"}}).status_code == 404
    # filters: flavor, image, name as a regular expression, status; paging with next links
    by_flavor = httpx.get(f"{cloud.compute_url}/servers?flavor=11", headers=h(token)).json()["servers"]
    assert b["id"] in [s["id"] for s in by_flavor] and sid not in [s["id"] for s in by_flavor]
    assert [s["id"] for s in httpx.get(f"{cloud.compute_url}/servers?name=^renam.d$",
                                       headers=h(token)).json()["servers"]] == [sid]
    assert httpx.get(f"{cloud.compute_url}/servers?status=bogus", headers=h(token)).json()["servers"] == []
    assert httpx.get(f"{cloud.compute_url}/servers?image={'0' * 36}", headers=h(token)).json()["servers"] == []
    page = httpx.get(f"{cloud.compute_url}/servers/detail?limit=1", headers=h(token)).json()
    assert len(page["servers"]) == 1 and page["servers_links"][0]["rel"] == "next"
    second = httpx.get(page["servers_links"][0]["href"], headers=h(token)).json()["servers"]
    assert second and second[0]["id"] != page["servers"][0]["id"]
    for query in ("limit=-1", "limit=abc", "changes-since=yesterday", "sort_key=bogus", "marker=nope"):
        assert httpx.get(f"{cloud.compute_url}/servers?{query}", headers=h(token)).status_code == 400, query
    # changes-since lists deleted servers too, as DELETED
    since = show(cloud, token, b["id"])["updated"]
    httpx.delete(f"{cloud.compute_url}/servers/{b['id']}", headers=h(token))
    changed = httpx.get(f"{cloud.compute_url}/servers/detail?changes-since={since}", headers=h(token)).json()
    assert {s["id"]: s["status"] for s in changed["servers"]}.get(b["id"]) == "DELETED"
    future = "2999-01-01T00:00:00Z"
    assert httpx.get(f"{cloud.compute_url}/servers?changes-since={future}", headers=h(token)).json()[
        "servers"] == []
    # reset state by an admin
    assert act(cloud, token, sid, {"os-resetState": {"state": "error"}}).status_code == 202
    assert show(cloud, token, sid)["status"] == "ERROR"
    assert act(cloud, token, sid, {"os-resetState": {"state": "bogus"}}).status_code == 400
    cloud.cli("server", "set", "--state", "active", "--auto-approve", sid)
    assert show(cloud, token, sid)["status"] == "ACTIVE"
    events = json.loads(cloud.cli("server", "event", "list", sid, "-f", "json").stdout)
    assert {"create", "resetState"} <= {e["Action"] for e in events}
    httpx.delete(f"{cloud.compute_url}/servers/{sid}", headers=h(token))


def test_usage_reports_hours_per_project(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token, body = admin
    server = boot(cloud, token)
    project = body["project"]["id"]
    r = httpx.get(f"{cloud.compute_url}/os-simple-tenant-usage/{project}?start=2000-01-01T00:00:00",
                  headers=h(token))
    usage = r.json()["tenant_usage"]
    mine = [u for u in usage["server_usages"] if u["instance_id"] == server["id"]]
    assert mine and mine[0]["vcpus"] == 1 and mine[0]["memory_mb"] == 128 and mine[0]["hours"] > 0
    assert usage["total_memory_mb_usage"] >= mine[0]["hours"] * 128
    listed = json.loads(cloud.cli("usage", "list", "-f", "json").stdout)
    assert any(u["Project"] in (project, "admin") for u in listed)
    demo, _ = cloud.token("demo", cloud.demo_password, "demo")
    assert httpx.get(f"{cloud.compute_url}/os-simple-tenant-usage/{project}", headers=h(demo)).status_code == 403
    assert httpx.get(f"{cloud.compute_url}/os-simple-tenant-usage", headers=h(demo)).status_code == 403
    assert httpx.get(f"{cloud.compute_url}/os-migrations", headers=h(demo)).status_code == 403
    httpx.delete(f"{cloud.compute_url}/servers/{server['id']}", headers=h(token))


def test_create_options_and_bad_input(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    image = image_id(cloud, token)

    def post(server: dict, version: str = "2.52", **top: Any) -> httpx.Response:
        return httpx.post(f"{cloud.compute_url}/servers", headers=h(token, version), json={"server": {
            "name": unique("opt"), "flavorRef": "10", "imageRef": image, "networks": "none", **server}, **top})

    user_data = "IyEvYmluL3NoCmVjaG8gaGk="
    r = post({"user_data": user_data, "config_drive": True, "tags": ["x"], "adminPass": "pw",
              "accessIPv4": "192.0.2.1", "block_device_mapping_v2": [
                  {"source_type": "image", "destination_type": "local", "boot_index": 0, "uuid": image}]})
    assert r.status_code == 202 and r.json()["server"]["adminPass"] == "pw", r.text
    created = wait_status(cloud, token, r.json()["server"]["id"], "ACTIVE")
    detail = show(cloud, token, created["id"], "2.52")
    assert detail["config_drive"] == "True" and detail["tags"] == ["x"] and detail["accessIPv4"] == "192.0.2.1"
    assert detail["OS-EXT-SRV-ATTR:user_data"] == user_data
    # multiple create with a reservation id
    r = post({"min_count": 2, "max_count": 2, "return_reservation_id": True})
    assert r.status_code == 202 and r.json()["reservation_id"].startswith("r-")
    for bad in ({"name": 12345}, {"name": " "}, {"name": "x" * 256}, {"user_data": "not base64!"},
                {"accessIPv6": "1.2.3.4"}, {"metadata": {"k": "v" * 256}}, {"networks": [{"uuid": "nope"}]},
                {"flavorRef": "no-such"}, {"tags": ["a/b"]}, {"min_count": 0},
                {"block_device_mapping_v2": [{"source_type": "volume", "destination_type": "volume",
                                              "uuid": image, "boot_index": 0}]}):
        r = post(bad)
        assert r.status_code == 400, (bad, r.text)
    r = post({}, **{"os:scheduler_hints": {"group": "0" * 36}})
    assert r.status_code == 400
    # anti-affinity through a server group hint: two members land on different hosts
    group = httpx.post(f"{cloud.compute_url}/os-server-groups", headers=h(token, "2.64"), json={
        "server_group": {"name": unique("g"), "policy": "anti-affinity"}}).json()["server_group"]
    hosts = set()
    members = []
    for _ in range(2):
        r = post({}, **{"os:scheduler_hints": {"group": group["id"]}})
        assert r.status_code == 202, r.text
        s = wait_status(cloud, token, r.json()["server"]["id"], "ACTIVE")
        hosts.add(s["OS-EXT-SRV-ATTR:host"])
        members.append(s["id"])
    assert len(hosts) == 2
    # a third has nowhere to go: there are two hosts
    r = post({}, **{"os:scheduler_hints": {"group": group["id"]}})
    failed = wait_status(cloud, token, r.json()["server"]["id"], "ERROR")
    assert "ServerGroupAntiAffinityFilter removed 2" in failed["fault"]["message"]
    members.append(failed["id"])
    everything = httpx.get(f"{cloud.compute_url}/servers", headers=h(token)).json()["servers"]
    for s in everything:
        httpx.delete(f"{cloud.compute_url}/servers/{s['id']}", headers=h(token))


def test_soft_delete_restore_and_reclaim(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With a reclaim interval, delete keeps the server SOFT_DELETED (restorable, forceDelete-able)
    until the interval passes; then the reconciler deletes it and frees its claim."""
    c = start_cloud(tmp_path, "sqlite", {"CUMULO_COMPUTE__RECLAIM_INSTANCE_INTERVAL": "3"})
    try:
        token = c.token()[0]
        kept = boot(c, token)
        conn = c.sdk()
        conn.compute.delete_server(kept["id"])
        assert show(c, token, kept["id"])["status"] == "SOFT_DELETED"
        assert allocations(c, token, kept["id"])  # still claimed: it can come back
        conn.compute.restore_server(kept["id"])
        assert wait_status(c, token, kept["id"], "ACTIVE")["status"] == "ACTIVE"
        conn.compute.delete_server(kept["id"])
        assert act(c, token, kept["id"], {"forceDelete": None}).status_code == 202
        assert httpx.get(f"{c.compute_url}/servers/{kept['id']}", headers=h(token)).status_code == 404
        reclaimed = boot(c, token)
        conn.compute.delete_server(reclaimed["id"])
        deadline = time.monotonic() + 20
        while httpx.get(f"{c.compute_url}/servers/{reclaimed['id']}", headers=h(token)).status_code != 404:
            assert time.monotonic() < deadline, "the soft-deleted server was never reclaimed"
            time.sleep(0.5)
        assert allocations(c, token, reclaimed["id"]) == {}
    finally:
        stop_cloud(c)


def test_concurrent_creates_stop_exactly_at_the_quota(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    """instances=3 and 10 creates at once: exactly 3 are accepted (no overshoot, and no refusal
    while there was room), the other 7 get 403 with Nova's quota message, and the project's usage
    is 3 afterwards."""
    from tests.functional.test_races import together

    token = admin[0]
    name = unique("quota")
    project = httpx.post(f"{cloud.url}/projects", headers={"X-Auth-Token": token}, json={"project": {
        "name": name, "domain_id": "default"}}).json()["project"]
    cloud.cli("role", "add", "--user", "admin", "--project", name, "member")
    scoped, _ = cloud.token("admin", cloud.admin_password, name)
    cloud.cli("quota", "set", "--instances", "3", project["id"])
    image = image_id(cloud, scoped)
    results = together(10, lambda: httpx.post(f"{cloud.compute_url}/servers", headers=h(scoped), timeout=60, json={
        "server": {"name": unique("race"), "flavorRef": "10", "imageRef": image, "networks": "none"}}))
    codes = sorted(r.status_code for r in results)
    assert codes == [202] * 3 + [403] * 7, [(r.status_code, r.text[:200]) for r in results]
    for r in results:
        if r.status_code == 403:
            assert "Quota exceeded for instances" in r.json()["forbidden"]["message"], r.text
    accepted = {r.json()["server"]["id"] for r in results if r.status_code == 202}
    servers = httpx.get(f"{cloud.compute_url}/servers", headers=h(scoped)).json()["servers"]
    assert {s["id"] for s in servers} == accepted
    used = httpx.get(f"{cloud.compute_url}/os-quota-sets/{project['id']}/detail", headers=h(scoped)).json()
    assert used["quota_set"]["instances"] == {"limit": 3, "in_use": 3, "reserved": 0}, used
    for sid in accepted:
        assert wait_status(cloud, scoped, sid, "ACTIVE")["status"] == "ACTIVE"
        assert httpx.delete(f"{cloud.compute_url}/servers/{sid}", headers=h(scoped)).status_code == 204


def test_members_see_only_their_project(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    server = boot(cloud, token)
    demo, _ = cloud.token("demo", cloud.demo_password, "demo")
    sid = server["id"]
    assert httpx.get(f"{cloud.compute_url}/servers/{sid}", headers=h(demo)).status_code == 404
    for query in ("", f"?project_id={server['tenant_id']}"):  # a project filter without all_tenants is ignored
        listed = httpx.get(f"{cloud.compute_url}/servers{query}", headers=h(demo)).json()["servers"]
        assert sid not in [s["id"] for s in listed], query
    for query in ("?all_tenants=1", f"?project_id={server['tenant_id']}&all_tenants=1"):  # Nova: admin only
        assert httpx.get(f"{cloud.compute_url}/servers{query}", headers=h(demo)).status_code == 403, query
    for method, path, body in (("POST", "/action", {"os-stop": None}), ("DELETE", "", None),
                               ("GET", "/os-instance-actions", None), ("PUT", "", {"server": {"name": "x"}}),
                               ("GET", "/metadata", None)):
        r = httpx.request(method, f"{cloud.compute_url}/servers/{sid}{path}", headers=h(demo, "2.26"), json=body)
        assert r.status_code == 404, (method, path, r.text)
    assert show(cloud, token, sid)["status"] == "ACTIVE"
    httpx.delete(f"{cloud.compute_url}/servers/{sid}", headers=h(token))


def test_metadata_api_for_a_signed_instance(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    import base64
    import hashlib
    import hmac

    token = admin[0]
    key = httpx.post(f"{cloud.compute_url}/os-keypairs", headers=h(token), json={"keypair": {
        "name": unique("mk")}}).json()["keypair"]
    script = b"#!/bin/sh\necho hi\n"
    server = boot(cloud, token, key_name=key["name"], metadata={"role": "db"},
                  user_data=base64.b64encode(script).decode())
    secret = (cloud.state_dir / "metadata-secret").read_text().strip()

    def md(path: str, instance: str = server["id"], signature: str | None = None, **kw: Any) -> httpx.Response:
        sig = signature if signature is not None else hmac.new(secret.encode(), instance.encode(),
                                                                hashlib.sha256).hexdigest()
        return httpx.request(kw.pop("method", "GET"), f"{cloud.metadata_url}{path}",
                             headers={"X-Instance-ID": instance, "X-Instance-ID-Signature": sig}, **kw)

    meta = md("/openstack/latest/meta_data.json").json()
    assert meta["uuid"] == server["id"] and meta["meta"] == {"role": "db"}
    assert meta["public_keys"] == {key["name"]: key["public_key"]} and meta["hostname"]
    assert md("/openstack/2013-04-04/user_data").content == script
    assert "user_data" in md("/openstack/latest").text.split()
    assert md("/openstack/latest/network_data.json").json()["links"] == []
    assert md("/latest/meta-data/instance-id").text.startswith("i-")
    assert md("/latest/meta-data/public-keys/0/openssh-key").text == key["public_key"]
    assert md("/latest/user-data").content == script
    # the guest may store its password once
    assert md("/openstack/latest/password", method="POST", content=b"c2VjcmV0").status_code == 200
    assert md("/openstack/latest/password").text == "c2VjcmV0"
    assert md("/openstack/latest/password", method="POST", content=b"again").status_code == 409
    # an unsigned or wrongly signed request learns nothing; unknown instances and versions are 404
    assert md("/openstack/latest/meta_data.json", signature="0" * 64).status_code == 403
    assert md("/openstack/latest/meta_data.json", instance="0" * 36).status_code == 404
    assert md("/openstack/1999-01-01/meta_data.json").status_code == 404
    httpx.delete(f"{cloud.compute_url}/servers/{server['id']}", headers=h(token))


def test_image_proxy_follows_a_snapshot(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    server = boot(cloud, token)
    r = act(cloud, token, server["id"], {"createImage": {"name": unique("proxied")}}, "2.1")
    image_id = r.headers["location"].rsplit("/", 1)[-1]
    deadline = time.monotonic() + 30
    while (shown := httpx.get(f"{cloud.compute_url}/images/{image_id}", headers=h(token, "2.1")).json()["image"])[
            "status"] != "ACTIVE":
        assert time.monotonic() < deadline and shown["status"] == "SAVING", shown
        time.sleep(0.2)
    assert shown["server"]["id"] == server["id"] and shown["OS-EXT-IMG-SIZE:size"] > 0 and shown["progress"] == 100
    listed = httpx.get(f"{cloud.compute_url}/images/detail?server={server['id']}", headers=h(token, "2.1")).json()
    assert [i["id"] for i in listed["images"]] == [image_id]
    assert httpx.get(f"{cloud.compute_url}/images/{image_id}", headers=h(token, "2.36")).status_code == 404
    assert httpx.delete(f"{cloud.compute_url}/images/{image_id}", headers=h(token, "2.1")).status_code == 204
    assert httpx.get(f"{cloud.compute_url}/images/{image_id}", headers=h(token, "2.1")).status_code == 404
    # a server that is neither building nor moving shows no progress, as in Nova
    act(cloud, token, server["id"], {"os-stop": None})
    stopped = wait_status(cloud, token, server["id"], "SHUTOFF")
    assert "progress" not in stopped
    httpx.delete(f"{cloud.compute_url}/servers/{server['id']}", headers=h(token))
