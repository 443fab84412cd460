"""The limits every JSON body obeys and the wording of schema faults (cumulo/core/http/schema.py)."""

from __future__ import annotations

import pytest

from cumulo.compute.schemas import SERVER_CREATE
from cumulo.core.http import faults, schema


def check(value: object) -> str:
    with pytest.raises(faults.ValidationError) as caught:
        schema.validate(schema.compile_schema(SERVER_CREATE), value)
    return caught.value.message


def test_depth_limit_and_nul_anywhere() -> None:
    ok: object = 1
    for _ in range(schema.MAX_DEPTH):  # exactly the limit: fine; one more level: refused
        ok = {"a": ok}
    schema.check_shape(ok)
    with pytest.raises(faults.ValidationError, match="deeper"):
        schema.check_shape([ok])
    with pytest.raises(faults.ValidationError, match="NUL"):
        schema.check_shape({"a": [{"b": "x\x00"}]})
    with pytest.raises(faults.ValidationError, match="NUL"):
        schema.check_shape({"a\x00": 1})
    for scalar in (None, 0, 1.5, True, "plain"):  # bodies that are not objects pass on to the schema
        schema.check_shape(scalar)
    with pytest.raises(faults.ValidationError, match="NUL"):
        schema.check_shape("a\x00")


def test_content_types() -> None:
    for fine in (None, "", "application/json", "application/json; charset=UTF-8",
                 "application/openstack-images-v2.1-json-patch", "application/vnd.openstack.compute+json"):
        schema.check_content_type(fine)
    for wrong in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        with pytest.raises(faults.UnsupportedMediaType):
            schema.check_content_type(wrong)


def test_faults_name_the_field_and_the_problem() -> None:
    base = {"name": "vm", "flavorRef": "1"}
    assert "server.max_count" in check({"server": {**base, "max_count": 10**300}})
    assert "server.max_count" in check({"server": {**base, "max_count": "1001"}})
    assert "an integer from 1 to 1000" in check({"server": {**base, "max_count": 5000}})
    assert "server.key_name" in check({"server": {**base, "key_name": ["a"]}})
    assert "'colour'" in check({"server": {**base, "colour": 1}})
    assert "control characters" in check({"server": {**base, "name": "a\tb"}})
    assert "server.flavorRef" in check({"server": {"name": "vm"}}) or "flavorRef" in check({"server": {"name": "vm"}})
    schema.validate(schema.compile_schema(SERVER_CREATE), {"server": {**base, "max_count": "1000", "min_count": 2}})


def test_openapi_document_lists_routes_and_bodies() -> None:
    doc = schema.openapi_document("compute", [("/v2.1/servers", ["GET", "HEAD", "POST"]),
                                              ("/v2.1/servers/{server_id}", ["GET", "DELETE"])],
                                  {("POST", "/v2.1/servers"): SERVER_CREATE}, "http://x:8774")
    assert doc["servers"] == [{"url": "http://x:8774"}]
    assert set(doc["paths"]["/v2.1/servers"]) == {"get", "post"}
    assert doc["paths"]["/v2.1/servers"]["post"]["requestBody"]["content"]["application/json"]["schema"] \
        is SERVER_CREATE
    assert doc["paths"]["/v2.1/servers/{server_id}"]["delete"]["parameters"][0]["name"] == "server_id"
