"""What a guest learns about itself, in the formats cloud-init's OpenStack and EC2 datasources read:
the config drive (built by the compute driver) and the metadata API (served by the controller,
reached by guests at 169.254.169.254 through the network's metadata proxy) share these builders.

The metadata API trusts the proxy the way Nova trusts Neutron's: the proxy names the instance in
``X-Instance-ID`` and signs it with the shared secret (``X-Instance-ID-Signature``, HMAC-SHA256).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from sqlalchemy import update
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from cumulo.compute.models import Server
from cumulo.core import instance_signature
from cumulo.core.http.app import JSON, Router
from cumulo.core.http.faults import Conflict, Forbidden, NotFound

OPENSTACK_VERSIONS = ["2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15", "2016-06-30", "2016-10-06",
                      "2017-02-22", "2018-08-27", "2020-10-14", "latest"]
EC2_VERSIONS = ["1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15", "2008-02-01",
                "2008-09-01", "2009-04-04", "latest"]
OPENSTACK_FILES = ["meta_data.json", "network_data.json", "vendor_data.json", "vendor_data2.json", "password",
                   "user_data"]


def meta_data(instance: dict[str, Any]) -> dict[str, Any]:
    """openstack/<version>/meta_data.json for an instance (the dict the controller sends agents)."""
    keys = instance.get("public_keys") or {}
    hostname = instance.get("hostname") or instance.get("name") or "server"
    return {"uuid": instance["id"], "name": instance.get("name"), "hostname": hostname,
            "launch_index": instance.get("launch_index", 0),
            "availability_zone": instance.get("availability_zone") or "nova",
            "project_id": instance.get("project_id"), "meta": instance.get("metadata") or {},
            "public_keys": keys, "keys": [{"name": k, "type": "ssh", "data": v} for k, v in keys.items()],
            "devices": instance.get("devices") or [],
            "random_seed": base64.b64encode(hashlib.sha512(instance["id"].encode()).digest()).decode(),
            **({"files": [{"path": f["path"], "content_path": f"/content/{n:04d}"}
                          for n, f in enumerate(instance["files"])]} if instance.get("files") else {})}


def network_data(instance: dict[str, Any]) -> dict[str, Any]:
    """network_data.json: a link per port (its tap) and a DHCP-configured network on each, as Nova
    writes it for ports on Linux bridges."""
    links, networks = [], []
    for port in instance.get("ports") or []:
        link = f"tap{port['id'][:11]}"
        links.append({"id": link, "vif_id": port["id"], "type": "bridge",
                      "ethernet_mac_address": port["mac_address"], "mtu": port.get("mtu")})
        versions = sorted({6 if ":" in ip["ip_address"] else 4 for ip in port.get("fixed_ips") or []})
        for version in versions:
            networks.append({"id": f"network{len(networks)}", "link": link, "network_id": port["network_id"],
                             "type": "ipv4_dhcp" if version == 4 else "ipv6_dhcp"})
    return {"links": links, "networks": networks, "services": []}


def user_data(instance: dict[str, Any]) -> bytes | None:
    raw = instance.get("user_data")
    return base64.b64decode(raw) if raw else None


def config_drive_files(instance: dict[str, Any]) -> dict[str, bytes]:
    """Paths (relative to the drive's root) and contents of a config drive."""
    files = {"openstack/latest/meta_data.json": json.dumps(meta_data(instance)).encode(),
             "openstack/latest/network_data.json": json.dumps(network_data(instance)).encode(),
             "openstack/latest/vendor_data.json": b"{}", "openstack/latest/vendor_data2.json": b"{}"}
    data = user_data(instance)
    if data is not None:
        files["openstack/latest/user_data"] = data
    for n, f in enumerate(instance.get("files") or []):  # personality files, named in meta_data.json
        files[f"openstack/content/{n:04d}"] = base64.b64decode(f.get("contents") or "")
    return files


def router(manager: Any, secret: str) -> Router:
    """The metadata API: /openstack/... and the EC2-style /<version>/meta-data/..."""
    r = Router()

    async def instance_of(request: Request) -> dict[str, Any]:
        instance_id = request.headers.get("x-instance-id", "")
        signature = request.headers.get("x-instance-id-signature", "")
        if not instance_id or not instance_signature.verify(secret, instance_id, signature):
            raise Forbidden("The request does not come from a trusted metadata proxy (X-Instance-ID-Signature).")
        server = await manager.get(instance_id)
        if server is None or server.deleted_at is not None:
            raise NotFound(f"Instance {instance_id} could not be found.")
        data = await manager.payload(server.id)
        data["launch_index"] = (server.request or {}).get("launch_index", 0)
        data["reservation_id"] = (server.request or {}).get("reservation_id")
        data["password"] = (server.system_meta or {}).get("password", "")
        return data

    def listing(items: list[str]) -> Response:
        return PlainTextResponse("\n".join(items))

    @r.get("/", auth=False)
    async def root(request: Request) -> Response:
        await instance_of(request)
        return listing(EC2_VERSIONS + ["openstack"])

    @r.get("/openstack", auth=False)
    async def openstack_versions(request: Request) -> Response:
        await instance_of(request)
        return listing(OPENSTACK_VERSIONS)

    @r.get("/openstack/{version}", auth=False)
    async def openstack_files(request: Request) -> Response:
        instance = await instance_of(request)
        check_version(request.path_params["version"], OPENSTACK_VERSIONS)
        return listing([f for f in OPENSTACK_FILES if f != "user_data" or instance.get("user_data")])

    @r.get("/openstack/content/{name}", auth=False)
    async def openstack_content(request: Request) -> Response:
        instance = await instance_of(request)
        name = request.path_params["name"]
        files = instance.get("files") or []
        if not (name.isdigit() and int(name) < len(files)):
            raise NotFound(f"No content {name}.")
        return Response(base64.b64decode(files[int(name)].get("contents") or ""),
                        media_type="application/octet-stream")

    @r.route("/openstack/{version}/{item}", ["GET", "POST"], auth=False)
    async def openstack_item(request: Request) -> Response:
        instance = await instance_of(request)
        check_version(request.path_params["version"], OPENSTACK_VERSIONS)
        item = request.path_params["item"]
        if item == "password":
            if request.method == "POST":
                return await set_password(request, instance)
            return PlainTextResponse(instance["password"])
        if request.method != "GET":
            raise NotFound(f"{item} does not take {request.method}.")
        if item == "meta_data.json":
            return JSON(meta_data(instance))
        if item == "network_data.json":
            return JSON(network_data(instance))
        if item in ("vendor_data.json", "vendor_data2.json"):
            return JSON({})
        if item == "user_data":
            data = user_data(instance)
            if data is None:
                raise NotFound("This instance has no user data.")
            return Response(data, media_type="application/octet-stream")
        raise NotFound(f"No metadata item {item}.")

    async def set_password(request: Request, instance: dict[str, Any]) -> Response:
        """A guest may store its (encrypted) password once; Nova's rules: 255 bytes, then 409."""
        body = await request.body()
        if len(body) > 255:
            raise Conflict("The password is longer than 255 bytes.")
        if instance["password"]:
            raise Conflict("The password is already set.")
        server = await manager.get(instance["id"])
        async with manager.db.session() as s:
            await s.execute(update(Server).where(Server.id == server.id).values(
                system_meta={**(server.system_meta or {}), "password": body.decode(errors="replace")}))
        return Response(status_code=200)

    def ec2(instance: dict[str, Any]) -> dict[str, Any]:
        keys = instance.get("public_keys") or {}
        hostname = instance.get("hostname") or "server"
        return {"ami-id": f"ami-{int(instance['image_id'][:8], 16) if instance.get('image_id') else 0:08x}",
                "ami-launch-index": str(instance.get("launch_index", 0)), "hostname": hostname,
                "instance-id": f"i-{int(instance['id'][:8], 16):08x}",
                "instance-type": instance["flavor"]["name"], "local-hostname": hostname,
                "placement": {"availability-zone": instance.get("availability_zone") or "nova"},
                "public-keys": {f"{i}={name}": {"openssh-key": key} for i, (name, key) in enumerate(keys.items())},
                "reservation-id": instance.get("reservation_id") or "",
                "security-groups": "default"}

    @r.get("/{version}/meta-data/{path:path}", auth=False)
    async def ec2_meta(request: Request) -> Response:
        instance = await instance_of(request)
        check_version(request.path_params["version"], EC2_VERSIONS)
        node: Any = ec2(instance)
        for part in [p for p in request.path_params["path"].split("/") if p]:
            if not isinstance(node, dict) or part not in node and part.split("=")[0] not in {
                    k.split("=")[0] for k in node}:
                raise NotFound(f"No metadata item {request.path_params['path']}.")
            node = node.get(part) or next(v for k, v in node.items() if k.split("=")[0] == part.split("=")[0])
        if isinstance(node, dict):
            return listing([k + "/" if isinstance(v, dict) else k for k, v in node.items()])
        return PlainTextResponse(str(node))

    @r.get("/{version}/user-data", auth=False)
    async def ec2_user_data(request: Request) -> Response:
        instance = await instance_of(request)
        check_version(request.path_params["version"], EC2_VERSIONS)
        data = user_data(instance)
        if data is None:
            raise NotFound("This instance has no user data.")
        return Response(data, media_type="application/octet-stream")

    return r


def check_version(version: str, known: list[str]) -> None:
    if version not in known:
        raise NotFound(f"Unknown metadata version {version}.")
