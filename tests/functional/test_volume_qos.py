"""QoS specs and volume type access against a real cloud: an admin makes, edits, associates and
deletes QoS specs as Cinder's /qos-specs does (in-use specs need ``force``), a type shows its
``qos_specs_id``, a volume of that type carries the front-end limits in its connection info (the
per-GiB forms computed for its size; back-end specs stay out of it), a limit that is not a
non-negative integer is refused at the API; a private type is seen and used only by the projects
it is shared with; every route is an admin's.  The limits in a real guest: test_volume_attach."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.functional.conftest import Cloud, personas, start_cloud, stop_cloud, unique
from tests.functional.test_volumes import Api, cli_json

SERVICES = "identity,image,compute,placement,network,volume"


@pytest.fixture(scope="module")
def qcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("volume-qos"), "sqlite", {
        "CUMULO_SERVICES": SERVICES, "CUMULO_IMAGE__UPLOAD_GUEST_IMAGES": "false"})
    yield c
    stop_cloud(c)


@pytest.fixture(scope="module")
def admin(qcloud: Cloud) -> Api:
    token, body = qcloud.token()
    return Api(qcloud, token, body["project"]["id"])


@pytest.fixture(scope="module")
def people(qcloud: Cloud) -> dict[str, Api]:
    return {name: Api(qcloud, token, project) for name, (token, project) in personas(qcloud, "qos").items()}


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def new_type(admin: Api, **extra: Any) -> dict[str, Any]:
    return ok(admin("POST", "/types", {"volume_type": {"name": unique("qt"), **extra}}))["volume_type"]  # type: ignore


def new_qos(admin: Api, **specs: Any) -> dict[str, Any]:
    body = ok(admin("POST", "/qos-specs", {"qos_specs": {"name": unique("qos"), **specs}}))
    assert body["links"] and body["links"][0]["rel"] == "self"
    return body["qos_specs"]  # type: ignore[no-any-return]


def test_qos_specs_are_made_edited_listed_and_deleted(admin: Api) -> None:
    made = new_qos(admin, consumer="front-end", total_iops_sec="500", vendor_key="anything")
    assert made["consumer"] == "front-end" and made["specs"] == {"total_iops_sec": "500", "vendor_key": "anything"}
    assert new_qos(admin, write_iops_sec=100)["consumer"] == "back-end"  # Cinder's default; integers kept as strings
    qid = made["id"]
    assert admin("POST", "/qos-specs", {"qos_specs": {"name": made["name"]}}).status_code == 409
    shown = ok(admin("GET", f"/qos-specs/{qid}"))
    assert shown["qos_specs"] == made
    listed = ok(admin("GET", "/qos-specs"))["qos_specs"]
    assert made in listed
    assert [q["id"] for q in ok(admin("GET", f"/qos-specs?name={made['name']}"))["qos_specs"]] == [qid]
    assert all(q["consumer"] == "back-end" for q in ok(admin("GET", "/qos-specs?consumer=back-end"))["qos_specs"])
    assert len(ok(admin("GET", "/qos-specs?limit=1"))["qos_specs"]) == 1

    # PUT sets keys and the consumer (the answer is what was set); delete_keys removes keys
    assert ok(admin("PUT", f"/qos-specs/{qid}", {"qos_specs": {"read_bytes_sec": "1048576", "consumer": "both"}})
              ) == {"qos_specs": {"read_bytes_sec": "1048576", "consumer": "both"}}
    shown = ok(admin("GET", f"/qos-specs/{qid}"))["qos_specs"]
    assert shown["consumer"] == "both"
    assert shown["specs"] == {"total_iops_sec": "500", "vendor_key": "anything", "read_bytes_sec": "1048576"}
    ok(admin("PUT", f"/qos-specs/{qid}/delete_keys", {"keys": ["vendor_key"]}), 202)
    assert admin("PUT", f"/qos-specs/{qid}/delete_keys", {"keys": ["vendor_key"]}).status_code == 404
    assert set(ok(admin("GET", f"/qos-specs/{qid}"))["qos_specs"]["specs"]) == {"total_iops_sec", "read_bytes_sec"}

    ok(admin("DELETE", f"/qos-specs/{qid}"), 202)
    assert admin("GET", f"/qos-specs/{qid}").status_code == 404
    assert admin("DELETE", f"/qos-specs/{qid}").status_code == 404


@pytest.mark.parametrize("specs", [
    {"write_iops_sec": "-1"}, {"write_iops_sec": "fast"}, {"total_bytes_sec": 1.5}, {"read_iops_sec": -5},
    {"total_iops_sec_max": "1e3"}, {"write_bytes_sec": True}, {"consumer": "middle"}, {"write_iops_sec": None},
    {"total_iops_sec": str(10**16)}, {"key": {"nested": 1}}])
def test_a_limit_that_is_not_a_non_negative_integer_is_refused(admin: Api, specs: dict[str, Any]) -> None:
    r = admin("POST", "/qos-specs", {"qos_specs": {"name": unique("bad"), **specs}})
    assert r.status_code == 400, r.text
    qid = new_qos(admin)["id"]
    r = admin("PUT", f"/qos-specs/{qid}", {"qos_specs": specs})
    assert r.status_code == 400, r.text
    assert ok(admin("GET", f"/qos-specs/{qid}"))["qos_specs"]["specs"] == {}


def test_bad_bodies_and_unknown_specs(admin: Api) -> None:
    for body in ({}, {"qos_specs": {}}, {"qos_specs": {"name": ""}}, {"qos_specs": {"name": "   "}},
                 {"qos_specs": "x"}, {"qos_specs": {"name": "x" * 256}}):
        assert admin("POST", "/qos-specs", body).status_code == 400, body
    qid = new_qos(admin)["id"]
    for body in ({}, {"keys": "total_iops_sec"}, {"keys": [""]}, {"keys": ["a", "a"]}):
        assert admin("PUT", f"/qos-specs/{qid}/delete_keys", body).status_code == 400, body
    assert admin("PUT", f"/qos-specs/{qid}", {"specs": {}}).status_code == 400
    nobody = "00000000-0000-0000-0000-000000000000"
    for method, path in (("GET", ""), ("PUT", ""), ("DELETE", ""), ("GET", "/associations"),
                         ("GET", "/disassociate_all")):
        body = {"qos_specs": {"k": "v"}} if method == "PUT" else None
        assert admin(method, f"/qos-specs/{nobody}{path}", body).status_code == 404, (method, path)


def test_associations_and_the_types_qos_specs_id(admin: Api, people: dict[str, Api]) -> None:
    a, b = new_qos(admin, consumer="front-end"), new_qos(admin)
    t = new_type(admin)
    assert ok(admin("GET", f"/types/{t['id']}"))["volume_type"]["qos_specs_id"] is None
    ok(admin("GET", f"/qos-specs/{a['id']}/associate?vol_type_id={t['id']}"), 202)
    ok(admin("GET", f"/qos-specs/{a['id']}/associate?vol_type_id={t['id']}"), 202)  # again: nothing changes
    assert ok(admin("GET", f"/types/{t['id']}"))["volume_type"]["qos_specs_id"] == a["id"]
    listed = {x["id"]: x for x in ok(admin("GET", "/types"))["volume_types"]}
    assert listed[t["id"]]["qos_specs_id"] == a["id"]
    # the id is an admin's to see (volume_extension:access_types_qos_specs_id), as in Cinder
    assert "qos_specs_id" not in ok(people["member"]("GET", f"/types/{t['id']}"))["volume_type"]
    assert all("qos_specs_id" not in x for x in ok(people["reader"]("GET", "/types"))["volume_types"])
    assert ok(admin("GET", f"/qos-specs/{a['id']}/associations")) == {"qos_associations": [
        {"association_type": "volume_type", "name": t["name"], "id": t["id"]}]}
    # a type has one QoS specs; unknown ids are 404, a missing type id 400
    assert admin("GET", f"/qos-specs/{b['id']}/associate?vol_type_id={t['id']}").status_code == 400
    assert admin("GET", f"/qos-specs/{a['id']}/associate?vol_type_id=nonesuch").status_code == 404
    assert admin("GET", f"/qos-specs/{a['id']}/associate").status_code == 400
    assert admin("GET", f"/qos-specs/{a['id']}/disassociate").status_code == 400
    # in use: no delete without force
    r = admin("DELETE", f"/qos-specs/{a['id']}")
    assert r.status_code == 400 and "in use" in r.text, r.text
    ok(admin("GET", f"/qos-specs/{a['id']}/disassociate?vol_type_id={t['id']}"), 202)
    assert ok(admin("GET", f"/types/{t['id']}"))["volume_type"]["qos_specs_id"] is None
    assert ok(admin("GET", f"/qos-specs/{a['id']}/associations")) == {"qos_associations": []}
    # disassociate_all, then force: the types lose their specs with the specs
    t2 = new_type(admin)
    for vtype in (t, t2):
        ok(admin("GET", f"/qos-specs/{b['id']}/associate?vol_type_id={vtype['id']}"), 202)
    ok(admin("GET", f"/qos-specs/{b['id']}/disassociate_all"), 202)
    assert ok(admin("GET", f"/qos-specs/{b['id']}/associations"))["qos_associations"] == []
    ok(admin("GET", f"/qos-specs/{b['id']}/associate?vol_type_id={t2['id']}"), 202)
    ok(admin("DELETE", f"/qos-specs/{b['id']}?force=true"), 202)
    assert ok(admin("GET", f"/types/{t2['id']}"))["volume_type"]["qos_specs_id"] is None
    ok(admin("DELETE", f"/qos-specs/{a['id']}"), 202)


def connection_qos(api: Api, type_name: str, size: int = 1) -> Any:
    vid = ok(api("POST", "/volumes", {"volume": {"size": size, "volume_type": type_name}}), 202)["volume"]["id"]
    api.wait_status(vid, "available")
    info = ok(api("POST", f"/volumes/{vid}/action", {"os-initialize_connection": {"connector": {"host": "n1"}}}))
    return info["connection_info"]["data"]["qos_specs"]


def test_the_connection_info_carries_the_front_end_limits(admin: Api) -> None:
    front = new_qos(admin, consumer="front-end", write_iops_sec="100", total_bytes_sec="2097152",
                    read_iops_sec_per_gb="30", read_iops_sec_per_gb_min="50", read_iops_sec_max="200")
    t = new_type(admin)
    ok(admin("GET", f"/qos-specs/{front['id']}/associate?vol_type_id={t['id']}"), 202)
    # per GiB: 30 x 1 GiB is below the minimum, 30 x 3 GiB is 90, 30 x 8 GiB is capped by the _max
    for size, read in ((1, "50"), (3, "90"), (8, "200")):
        assert connection_qos(admin, t["name"], size) == {"write_iops_sec": "100", "total_bytes_sec": "2097152",
                                                          "read_iops_sec": read}, size
    # back-end specs are the storage's business: the compute node gets none; both: it gets them
    ok(admin("PUT", f"/qos-specs/{front['id']}", {"qos_specs": {"consumer": "back-end"}}))
    assert connection_qos(admin, t["name"]) is None
    ok(admin("PUT", f"/qos-specs/{front['id']}", {"qos_specs": {"consumer": "both"}}))
    assert connection_qos(admin, t["name"])["write_iops_sec"] == "100"
    assert connection_qos(admin, "__DEFAULT__") is None


def test_a_private_type_serves_only_the_projects_it_is_shared_with(admin: Api, people: dict[str, Api]) -> None:
    member, other = people["member"], people["other"]
    private = new_type(admin, **{"os-volume-type-access:is_public": False})
    tid = private["id"]
    assert ok(admin("GET", f"/types/{tid}/os-volume-type-access")) == {"volume_type_access": []}
    assert member("GET", f"/types/{tid}").status_code == 404
    assert tid not in [t["id"] for t in ok(member("GET", "/types"))["volume_types"]]
    assert member("POST", "/volumes", {"volume": {"size": 1, "volume_type": tid}}).status_code == 404

    ok(admin("POST", f"/types/{tid}/action", {"addProjectAccess": {"project": member.project_id}}), 202)
    r = admin("POST", f"/types/{tid}/action", {"addProjectAccess": {"project": member.project_id}})
    assert r.status_code == 409, r.text
    assert ok(admin("GET", f"/types/{tid}/os-volume-type-access")) == {"volume_type_access": [
        {"volume_type_id": tid, "project_id": member.project_id}]}
    assert ok(member("GET", f"/types/{tid}"))["volume_type"]["id"] == tid
    assert tid in [t["id"] for t in ok(member("GET", "/types"))["volume_types"]]
    vid = ok(member("POST", "/volumes", {"volume": {"size": 1, "volume_type": tid}}), 202)["volume"]["id"]
    assert member.wait_status(vid, "available")["volume_type"] == private["name"]
    assert other("GET", f"/types/{tid}").status_code == 404  # the other project still does not see it

    ok(admin("POST", f"/types/{tid}/action", {"removeProjectAccess": {"project": member.project_id}}), 202)
    assert admin("POST", f"/types/{tid}/action", {"removeProjectAccess": {"project": member.project_id}}
                 ).status_code == 404
    assert member("GET", f"/types/{tid}").status_code == 404
    # a public type has no access list; unknown types are 404; bodies are checked
    public = new_type(admin)["id"]
    assert admin("GET", f"/types/{public}/os-volume-type-access").status_code == 404
    assert admin("POST", f"/types/{public}/action", {"addProjectAccess": {"project": member.project_id}}
                 ).status_code == 400
    nobody = "00000000-0000-0000-0000-000000000000"
    assert admin("GET", f"/types/{nobody}/os-volume-type-access").status_code == 404
    assert admin("POST", f"/types/{nobody}/action", {"addProjectAccess": {"project": "p"}}).status_code == 404
    for body in ({}, {"addProjectAccess": {}}, {"addProjectAccess": {"project": ""}}, {"nonesuch": {}},
                 {"addProjectAccess": {"project": "p"}, "removeProjectAccess": {"project": "p"}}):
        assert admin("POST", f"/types/{tid}/action", body).status_code == 400, body


def test_every_route_is_an_admins(admin: Api, people: dict[str, Api]) -> None:
    qid, tid = new_qos(admin)["id"], new_type(admin, **{"os-volume-type-access:is_public": False})["id"]
    calls = [("GET", "/qos-specs", None), ("POST", "/qos-specs", {"qos_specs": {"name": unique("p")}}),
             ("GET", f"/qos-specs/{qid}", None), ("PUT", f"/qos-specs/{qid}", {"qos_specs": {"k": "v"}}),
             ("DELETE", f"/qos-specs/{qid}", None), ("PUT", f"/qos-specs/{qid}/delete_keys", {"keys": ["k"]}),
             ("GET", f"/qos-specs/{qid}/associations", None),
             ("GET", f"/qos-specs/{qid}/associate?vol_type_id={tid}", None),
             ("GET", f"/qos-specs/{qid}/disassociate?vol_type_id={tid}", None),
             ("GET", f"/qos-specs/{qid}/disassociate_all", None),
             ("GET", f"/types/{tid}/os-volume-type-access", None),
             ("POST", f"/types/{tid}/action", {"addProjectAccess": {"project": "p"}}),
             ("POST", f"/types/{tid}/action", {"removeProjectAccess": {"project": "p"}})]
    for name in ("reader", "member", "other"):
        for method, path, body in calls:
            r = people[name](method, path, body)
            assert r.status_code == 403 and "volume_extension:" in r.text, (name, method, path, r.text)
    assert ok(admin("GET", f"/qos-specs/{qid}"))["qos_specs"]["specs"] == {}  # nothing they asked happened
    assert ok(admin("GET", f"/types/{tid}/os-volume-type-access")) == {"volume_type_access": []}



def test_the_openstack_cli_manages_qos_and_type_access(qcloud: Cloud, admin: Api, people: dict[str, Api]) -> None:
    """A few commands only (each CLI start is slow); the rest of the API is covered above."""
    name = unique("cli-qos")
    made = cli_json(qcloud, "volume", "qos", "create", "--consumer", "front-end", "--property", "write_iops_sec=100",
                    name)
    assert made["consumer"] == "front-end" and made["name"] == name
    vtype = new_type(admin, **{"os-volume-type-access:is_public": False})
    qcloud.cli("volume", "qos", "associate", name, vtype["id"])
    shown = cli_json(qcloud, "volume", "qos", "show", name)
    assert vtype["name"] in str(shown["associations"]) and "write_iops_sec" in str(shown["properties"])
    qcloud.cli("volume", "type", "set", "--project", people["member"].project_id, vtype["id"])
    assert ok(admin("GET", f"/types/{vtype['id']}/os-volume-type-access"))["volume_type_access"] == [
        {"volume_type_id": vtype["id"], "project_id": people["member"].project_id}]
    ok(admin("DELETE", f"/qos-specs/{made['id']}?force=true"), 202)
