"""POST /v2.1/servers/{id}/action: one handler per action, named as in Nova's API."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.compute.api.block_devices import volume_caller
from cumulo.compute.api.common import at_least
from cumulo.compute.api.security_groups import add_to_server, remove_from_server
from cumulo.compute.api.servers import (
    Views,
    as_updated,
    check_disk_config,
    check_ip,
    check_meta,
    check_name,
    check_personality,
    check_user_data,
    personality_limits,
)
from cumulo.compute.models import Server
from cumulo.compute.scheduler.scheduler import NoValidHost
from cumulo.compute.servers import ServerManager
from cumulo.compute.servers.volume_backed import ROOT_DEVICE
from cumulo.core.http.app import JSON, Router, auth_of, json_body
from cumulo.core.http.authz import allowed, authorize
from cumulo.core.http.faults import BadRequest, Conflict, Forbidden, NotFound
from cumulo.image.service import Caller

LOG = logging.getLogger(__name__)

Action = Callable[[Request, Server, Any], Awaitable[Response]]
SIMPLE = {"os-stop": "stop", "os-start": "start", "pause": "pause", "unpause": "unpause", "suspend": "suspend",
          "resume": "resume"}
# the policy rule of each action (Nova's names)
RULES = {
    "os-stop": "os_compute_api:servers:stop", "os-start": "os_compute_api:servers:start",
    "pause": "os_compute_api:os-pause-server:pause", "unpause": "os_compute_api:os-pause-server:unpause",
    "suspend": "os_compute_api:os-suspend-server:suspend", "resume": "os_compute_api:os-suspend-server:resume",
    "lock": "os_compute_api:os-lock-server:lock", "unlock": "os_compute_api:os-lock-server:unlock",
    "reboot": "os_compute_api:servers:reboot", "os-resetState": "os_compute_api:os-admin-actions:reset_state",
    "resize": "os_compute_api:servers:resize", "confirmResize": "os_compute_api:servers:confirm_resize",
    "revertResize": "os_compute_api:servers:revert_resize", "migrate": "os_compute_api:os-migrate-server:migrate",
    "os-migrateLive": "os_compute_api:os-migrate-server:migrate_live", "evacuate": "os_compute_api:os-evacuate",
    "rebuild": "os_compute_api:servers:rebuild", "createImage": "os_compute_api:servers:create_image",
    "shelve": "os_compute_api:os-shelve:shelve", "shelveOffload": "os_compute_api:os-shelve:shelve_offload",
    "unshelve": "os_compute_api:os-shelve:unshelve", "os-getConsoleOutput": "os_compute_api:os-console-output",
    "os-getSerialConsole": "os_compute_api:os-remote-consoles", "os-getVNCConsole": "os_compute_api:os-remote-consoles",
    "forceDelete": "os_compute_api:os-deferred-delete:force", "restore": "os_compute_api:os-deferred-delete:restore",
    "addFloatingIp": "os_compute_api:os-floating-ips:add", "removeFloatingIp": "os_compute_api:os-floating-ips:remove",
    "addSecurityGroup": "os_compute_api:os-security-groups:add",
    "removeSecurityGroup": "os_compute_api:os-security-groups:remove",
    "rescue": "os_compute_api:os-rescue", "unrescue": "os_compute_api:os-unrescue",
    "createBackup": "os_compute_api:os-create-backup",
    "injectNetworkInfo": "os_compute_api:os-admin-actions:inject_network_info",
    "addFixedIp": "os_compute_api:os-multinic:add", "removeFixedIp": "os_compute_api:os-multinic:remove",
}
# what a locked server still gives its project, as Nova does (its consoles)
UNLOCKED = {"os-getSerialConsole", "os-getVNCConsole"}
# kept in a snapshot's properties from the image the server booted from
INHERITED = {"kernel_id", "ramdisk_id", "kernel_args", "architecture", "hw_architecture", "os_distro", "os_type",
             "hypervisor_type", "img_hv_type", "hw_disk_bus", "hw_vif_model", "hw_machine_type", "hw_firmware_type",
             "os_require_quiesce"}


def target_of(server: Server) -> dict[str, Any]:
    return {"project_id": server.project_id, "user_id": server.user_id}


def accepted() -> Response:
    return Response(status_code=202)


def router(manager: ServerManager, images: Any, extra: dict[str, Action] | None = None) -> Router:
    """``extra``: handlers of actions that live in their own modules (the remote consoles')."""
    r = Router()
    compute = manager.compute
    handlers: dict[str, Action] = dict(extra or {})

    def action(name: str) -> Callable[[Action], Action]:
        def register(fn: Action) -> Action:
            handlers[name] = fn
            return fn
        return register

    async def no_valid_host(request: Request, exc: NoValidHost) -> BadRequest:
        return BadRequest(exc.message if auth_of(request).is_admin() else exc.public_message)

    async def flavor_from(request: Request, ref: Any) -> Any:
        if ref is None or not isinstance(ref, (str, int)) or isinstance(ref, bool) or not str(ref):
            raise BadRequest("Invalid input for field/attribute flavorRef: a flavor id is required.")
        auth = auth_of(request)
        try:
            return await compute.flavor(str(ref).rsplit("/", 1)[-1], auth.project_id, auth.is_admin())
        except NotFound:
            raise BadRequest(f"Flavor {ref} could not be found.") from None

    async def image_from(request: Request, ref: Any) -> Any:
        if not isinstance(ref, str) or not ref:
            raise BadRequest("Invalid input for field/attribute imageRef.")
        image_id = ref.rsplit("/", 1)[-1]
        if images is None:
            return None
        try:
            image = await images.image_info(image_id, Caller.of(auth_of(request)))
        except NotFound:
            raise BadRequest(f"Image {image_id} could not be found.") from None
        if image.status != "active":
            raise BadRequest(f"Image {image_id} is not active.")
        return image

    def token_of(request: Request) -> str:
        return request.headers.get("x-auth-token", "")

    async def new_image(request: Request, server: Server, name: str, metadata: dict[str, str],
                        extra: dict[str, Any] | None = None, volume_meta: dict[str, str] | None = None) -> Any:
        """The image a snapshot goes to; ``volume_meta``: a volume-backed server's, whose image
        holds no data (active at once) and inherits from its root volume's image metadata."""
        if images is None:
            raise Conflict("This cloud runs no image service: snapshots are not possible.")
        auth = auth_of(request)
        props: dict[str, Any] = {}
        if volume_meta is not None:
            props = {k: v for k, v in volume_meta.items() if k in INHERITED}
            min_disk, min_ram = int(volume_meta.get("min_disk") or 0), int(volume_meta.get("min_ram") or 0)
        elif server.image_id:
            try:
                base_image = await images.image_info(server.image_id, Caller(None, True, ""))
                props = {k: v for k, v in (base_image.properties or {}).items() if k in INHERITED}
                props["base_image_ref"] = server.image_id
                min_disk, min_ram = base_image.min_disk, base_image.min_ram
            except NotFound:
                min_disk, min_ram = 0, 0
        else:
            min_disk, min_ram = 0, 0
        props.update({"image_type": "snapshot", "instance_uuid": server.id, "user_id": auth.user_id,
                      "owner_project_name": None, **(extra or {}), **metadata})
        props = {k: v for k, v in props.items() if v is not None}
        if volume_meta is None:
            min_disk = max(min_disk or 0, server.flavor.get("disk", 0))
        values = {"name": name, "visibility": "private", "min_disk": min_disk or 0, "min_ram": min_ram or 0,
                  "properties": props}
        who = Caller(server.project_id, auth.is_admin(), auth.user_id)
        if volume_meta is not None:
            return await images.create_image(who, values, empty=True)
        return await images.create_image(who, values)

    async def snapshot_volume_backed(request: Request, server: Server, name: str, metadata: dict[str, str]) -> Any:
        """createImage of a volume-backed server, as Nova does it: block storage snapshots each
        volume, and the image (no data) records them in ``block_device_mapping``."""
        if images is None:
            raise Conflict("This cloud runs no image service: snapshots are not possible.")
        auth = auth_of(request)
        who = volume_caller(auth)
        volume_meta = await manager.root_image_meta(server)
        await manager.record(server.id, "createImage", server.project_id, auth.user_id)
        mapping = await manager.snapshot_volumes(server, who, name)
        extra = {"root_device_name": ROOT_DEVICE}
        if mapping:
            extra.update(block_device_mapping=json.dumps(mapping), bdm_v2="True")
        try:
            return await new_image(request, server, name, metadata, extra, volume_meta=volume_meta)
        except Exception:
            for m in mapping:
                try:
                    await manager.volumes.delete_snapshot(m["snapshot_id"], who)
                except Exception as exc:
                    LOG.warning("snapshot %s of a failed createImage not deleted: %s", m["snapshot_id"], exc)
            raise

    # -- power and locking ------------------------------------------------------------------------
    for api_name, op in SIMPLE.items():
        async def simple(request: Request, server: Server, arg: Any, op: str = op) -> Response:
            await manager.act(server, op)
            return accepted()
        handlers[api_name] = simple

    @action("reboot")
    async def reboot(request: Request, server: Server, arg: Any) -> Response:
        kind = arg.get("type") if isinstance(arg, dict) else None
        if not isinstance(kind, str) or kind.upper() not in ("SOFT", "HARD"):
            raise BadRequest("reboot needs {\"type\": \"SOFT\"} or {\"type\": \"HARD\"}.")
        await manager.act(server, f"reboot-{kind.lower()}")
        return accepted()

    @action("os-resetState")
    async def reset_state(request: Request, server: Server, arg: Any) -> Response:
        state = arg.get("state") if isinstance(arg, dict) else None
        if state not in ("active", "error"):
            raise BadRequest("os-resetState needs {\"state\": \"active\"} or {\"state\": \"error\"}.")
        await manager.reset_state(server, state)
        return accepted()

    # -- resize and moves -------------------------------------------------------------------------
    @action("resize")
    async def resize(request: Request, server: Server, arg: Any) -> Response:
        if not isinstance(arg, dict):
            raise BadRequest("resize needs {\"flavorRef\": ...}.")
        flavor = await flavor_from(request, arg.get("flavorRef"))
        if flavor.id == server.flavor["id"]:
            raise BadRequest("When resizing, instances must change flavor!")
        if flavor.disk < server.flavor["disk"] and not manager.volume_backed(server):  # its root is a volume
            raise BadRequest("Resize error: Unable to resize disk down.")
        if flavor.disabled:
            raise BadRequest(f"Flavor {flavor.id} is disabled.")
        for name, old, new in (("cores", server.flavor["vcpus"], flavor.vcpus), ("ram", server.flavor["ram"],
                                                                                 flavor.ram)):
            limit = await compute.quota(server.project_id, name)
            if limit is not None and new > old:
                used = (await manager.usage(server.project_id))[name]
                if used - old + new > limit:
                    raise Forbidden(f"Quota exceeded for {name}: Requested {new - old} more, but already used "
                                    f"{used} of {limit}.")
        try:
            await manager.resize(server, flavor)
        except NoValidHost as exc:
            raise await no_valid_host(request, exc) from None
        if arg.get("OS-DCF:diskConfig") is not None:
            await manager.set_request(server.id, disk_config=check_disk_config(arg["OS-DCF:diskConfig"]))
        return accepted()

    @action("confirmResize")
    async def confirm_resize(request: Request, server: Server, arg: Any) -> Response:
        await manager.confirm_resize(server)
        return Response(status_code=204)

    @action("revertResize")
    async def revert_resize(request: Request, server: Server, arg: Any) -> Response:
        await manager.revert_resize(server)
        return accepted()

    @action("migrate")
    async def migrate(request: Request, server: Server, arg: Any) -> Response:
        host = arg.get("host") if isinstance(arg, dict) and at_least(request, 56) else None
        if host is not None:
            authorize(request, "os_compute_api:os-migrate-server:migrate:host", target_of(server))
        try:
            await manager.resize(server, None, host)
        except NoValidHost as exc:
            raise await no_valid_host(request, exc) from None
        return accepted()

    @action("os-migrateLive")
    async def live_migrate(request: Request, server: Server, arg: Any) -> Response:
        if not isinstance(arg, dict) or "host" not in arg or "block_migration" not in arg:
            raise BadRequest("os-migrateLive needs host (null lets the scheduler choose) and block_migration.")
        if arg["host"] is not None and not isinstance(arg["host"], str):
            raise BadRequest("host must be a string or null.")
        if arg["host"] is not None:
            authorize(request, "os_compute_api:os-migrate-server:migrate_live:host", target_of(server))
        try:
            await manager.live_migrate(server, arg["host"])
        except NoValidHost as exc:
            raise await no_valid_host(request, exc) from None
        return accepted()

    @action("evacuate")
    async def evacuate(request: Request, server: Server, arg: Any) -> Response:
        arg = arg if isinstance(arg, dict) else {}
        host = arg.get("host")
        if host is not None and not isinstance(host, str):
            raise BadRequest("host must be a string.")
        try:
            await manager.evacuate(server, host)
        except NoValidHost as exc:
            raise await no_valid_host(request, exc) from None
        if at_least(request, 14):
            return Response(status_code=200)
        return JSON({"adminPass": arg.get("adminPass") or ""})

    # -- rebuild, snapshots, shelving -------------------------------------------------------------
    @action("rebuild")
    async def rebuild(request: Request, server: Server, arg: Any) -> Response:
        if not isinstance(arg, dict):
            raise BadRequest("rebuild needs {\"imageRef\": ...}.")
        image = await image_from(request, arg.get("imageRef"))
        image_id = arg["imageRef"].rsplit("/", 1)[-1]
        values: dict[str, Any] = {}
        if "name" in arg:
            values["name"] = check_name(arg["name"])
        if "metadata" in arg:
            values["meta"] = check_meta(arg["metadata"])
        if "accessIPv4" in arg:
            values["access_ipv4"] = check_ip(arg["accessIPv4"], 4, "accessIPv4")
        if "accessIPv6" in arg:
            values["access_ipv6"] = check_ip(arg["accessIPv6"], 6, "accessIPv6")
        if "description" in arg and at_least(request, 19):
            if arg["description"] is not None and (not isinstance(arg["description"], str)
                                                   or len(arg["description"]) > 255):
                raise BadRequest("description must be a string of at most 255 characters, or null.")
            values["description"] = arg["description"]
        if "key_name" in arg and at_least(request, 54):
            if arg["key_name"] is not None:
                try:
                    await compute.keypair(auth_of(request).user_id, arg["key_name"])
                except NotFound:
                    raise BadRequest(f"Invalid key_name provided: {arg['key_name']}.") from None
            values["key_name"] = arg["key_name"]
        if "user_data" in arg and at_least(request, 57):
            values["user_data"] = check_user_data(arg["user_data"])
        password = arg.get("adminPass")
        if password is not None and not isinstance(password, str):
            raise BadRequest("adminPass must be a string.")
        props = dict(image.properties or {}) if image is not None else {}
        asked = dict(server.request or {})  # the rebuild keeps (or changes) the disk config and files
        if arg.get("OS-DCF:diskConfig") is not None:
            asked["disk_config"] = check_disk_config(arg["OS-DCF:diskConfig"])
        if "personality" in arg:
            asked["personality"] = check_personality(request, arg["personality"],
                                                     await personality_limits(compute, server.project_id))
        server.request = asked
        await manager.rebuild(server, image_id, values, props)
        fresh = await manager.get(server.id)
        assert fresh is not None
        # Nova's rebuild view: the key name from 2.54, the user data (under its own name) from 2.57,
        # everything GET shows from 2.75 but the extended user_data attribute
        body = as_updated(request, await Views(manager).show(request, fresh),
                          keep=("key_name",) if at_least(request, 54) else ())
        body.pop("OS-EXT-SRV-ATTR:user_data", None)
        if at_least(request, 57):
            body["user_data"] = fresh.user_data
        body["adminPass"] = password or secrets.token_urlsafe(12)
        return JSON({"server": body}, status_code=202)

    @action("createImage")
    async def create_image(request: Request, server: Server, arg: Any) -> Response:
        if not isinstance(arg, dict):
            raise BadRequest("createImage needs {\"name\": ...}.")
        name = arg.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise BadRequest("Invalid input for field/attribute name: 1 to 255 characters.")
        metadata = check_meta(arg.get("metadata") or {})
        if server.vm_state not in ("active", "stopped", "paused", "suspended") or server.task_state:
            raise Conflict(f"Cannot 'createImage' instance {server.id} while it is in vm_state {server.vm_state}"
                           + (f" and task_state {server.task_state}" if server.task_state else ""))
        if manager.volume_backed(server):
            image = await snapshot_volume_backed(request, server, name, metadata)
            if at_least(request, 45):
                return JSON({"image_id": image.id}, status_code=202)
            return Response(status_code=202, headers={"Location": f"{manager.image_url}/v2/images/{image.id}"})
        image = await new_image(request, server, name, metadata)
        try:
            await manager.snapshot(server, image.id, token_of(request))
        except Exception:
            await manager._drop_image(image.id)
            raise
        if at_least(request, 45):
            return JSON({"image_id": image.id}, status_code=202)
        return Response(status_code=202, headers={"Location": f"{manager.image_url}/v2/images/{image.id}"})

    @action("createBackup")
    async def create_backup(request: Request, server: Server, arg: Any) -> Response:
        if not isinstance(arg, dict):
            raise BadRequest("createBackup needs {\"name\": ..., \"backup_type\": ..., \"rotation\": ...}.")
        extra = set(arg) - {"name", "backup_type", "rotation", "metadata"}
        if extra:
            raise BadRequest(f"Additional properties are not allowed ({', '.join(sorted(extra))} was unexpected)")
        missing = [k for k in ("name", "backup_type", "rotation") if k not in arg]
        if missing:
            raise BadRequest(f"'{missing[0]}' is a required property")
        name, backup_type, rotation = arg["name"], arg["backup_type"], arg["rotation"]
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise BadRequest("Invalid input for field/attribute name: 1 to 255 characters.")
        if not isinstance(backup_type, str):
            raise BadRequest("Invalid input for field/attribute backup_type: it must be a string.")
        if isinstance(rotation, str) and rotation.isdigit():
            rotation = int(rotation)
        if not isinstance(rotation, int) or isinstance(rotation, bool) or rotation < 0:
            raise BadRequest("Invalid input for field/attribute rotation: a non-negative integer is required.")
        metadata = check_meta(arg.get("metadata") or {})
        if server.vm_state not in ("active", "stopped", "paused", "suspended") or server.task_state:
            raise Conflict(f"Cannot 'createBackup' instance {server.id} while it is in vm_state {server.vm_state}"
                           + (f" and task_state {server.task_state}" if server.task_state else ""))
        if manager.volume_backed(server):
            raise BadRequest("Backup is not supported for volume-backed instances.")
        image = await new_image(request, server, name.strip(), metadata,
                                {"image_type": "backup", "backup_type": backup_type})
        try:
            await manager.backup(server, image.id, token_of(request), backup_type, rotation)
        except Exception:
            await manager._drop_image(image.id)
            raise
        if at_least(request, 45):
            return JSON({"image_id": image.id}, status_code=202)
        headers = {"Location": f"{manager.image_url}/v2/images/{image.id}"} if rotation > 0 else {}
        return Response(status_code=202, headers=headers)

    # -- rescue ---------------------------------------------------------------------------------
    @action("rescue")
    async def rescue(request: Request, server: Server, arg: Any) -> Response:
        if arg is not None and not isinstance(arg, dict):
            raise BadRequest("rescue takes null or an object.")
        arg = arg or {}
        extra = set(arg) - {"adminPass", "rescue_image_ref"}
        if extra:
            raise BadRequest(f"Additional properties are not allowed ({', '.join(sorted(extra))} was unexpected)")
        password = arg.get("adminPass")
        if password is not None and not isinstance(password, str):
            raise BadRequest("adminPass must be a string.")
        ref = arg.get("rescue_image_ref")
        if ref is not None and (not isinstance(ref, str) or not ref):
            raise BadRequest("rescue_image_ref must be an image id.")
        image_id = ref.rsplit("/", 1)[-1] if ref else (server.image_id or "")
        if not image_id and manager.volume_backed(server):
            image_id = (await manager.root_image_meta(server)).get("image_id", "")
        props: dict[str, Any] = {}
        if images is not None and image_id:
            try:
                image = await images.image_info(image_id, Caller.of(auth_of(request)))
            except NotFound:
                raise BadRequest(f"Image {image_id} is unacceptable: it cannot be used to rescue "
                                 f"instance {server.id}.") from None
            props = image.properties or {}
            if props.get("img_block_device_mapping") or props.get("block_device_mapping"):
                raise BadRequest(f"Image {image_id} is unacceptable: a volume snapshot image cannot rescue.")
        if not image_id:
            raise BadRequest(f"Instance {server.id} cannot be rescued: it has no image to rescue it with.")
        # stable-device rescue (the server's disks stay where they are): asked by the image's
        # hw_rescue_device/hw_rescue_bus; a volume-backed server needs it and 2.87
        stable = "hw_rescue_device" in props and "hw_rescue_bus" in props
        if manager.volume_backed(server) and not (stable and at_least(request, 87)):
            raise BadRequest(f"Instance {server.id} cannot be rescued: Cannot rescue a volume-backed instance")
        if server.vm_state not in ("active", "stopped", "error") or server.task_state:
            raise Conflict(f"Cannot 'rescue' instance {server.id} while it is in vm_state {server.vm_state}"
                           + (f" and task_state {server.task_state}" if server.task_state else ""))
        boot_props = {k: v for k, v in props.items() if k in ("kernel_id", "ramdisk_id", "kernel_args",
                                                                "hw_rescue_bus", "hw_rescue_device")}
        await manager.rescue(server, image_id, boot_props, stable)
        return JSON({"adminPass": password or secrets.token_urlsafe(12)})

    @action("unrescue")
    async def unrescue(request: Request, server: Server, arg: Any) -> Response:
        await manager.unrescue(server)
        return accepted()

    # -- multinic (up to 2.43) --------------------------------------------------------------------
    @action("addFixedIp")
    async def add_fixed_ip(request: Request, server: Server, arg: Any) -> Response:
        if at_least(request, 44):
            raise BadRequest("There is no such action: addFixedIp (removed in microversion 2.44).")
        network_id = arg.get("networkId") if isinstance(arg, dict) else None
        if not isinstance(network_id, (str, int)) or isinstance(network_id, bool) or not str(network_id):
            raise BadRequest("addFixedIp needs {\"networkId\": ...}.")
        await manager.add_fixed_ip(server, str(network_id))
        return accepted()

    @action("removeFixedIp")
    async def remove_fixed_ip(request: Request, server: Server, arg: Any) -> Response:
        if at_least(request, 44):
            raise BadRequest("There is no such action: removeFixedIp (removed in microversion 2.44).")
        address = arg.get("address") if isinstance(arg, dict) else None
        if not isinstance(address, str) or not address:
            raise BadRequest("removeFixedIp needs {\"address\": ...}.")
        await manager.remove_fixed_ip(server, address)
        return accepted()

    @action("injectNetworkInfo")
    async def inject_network_info(request: Request, server: Server, arg: Any) -> Response:
        # the guests here take their network from DHCP and the metadata service, both current:
        # there is nothing to push into them, as with Nova's libvirt driver
        await manager.record(server.id, "injectNetworkInfo", server.project_id, auth_of(request).user_id)
        return accepted()

    @action("shelve")
    async def shelve(request: Request, server: Server, arg: Any) -> Response:
        if server.vm_state not in ("active", "stopped", "paused", "suspended") or server.task_state:
            raise Conflict(f"Cannot 'shelve' instance {server.id} while it is in vm_state {server.vm_state}")
        if manager.volume_backed(server):  # no image: the volumes keep the disk
            await manager.shelve(server, None, token_of(request))
            return accepted()
        image = await new_image(request, server, f"{server.name}-shelved", {})
        try:
            await manager.shelve(server, image.id, token_of(request))
        except Exception:
            await manager._drop_image(image.id)
            raise
        return accepted()

    @action("shelveOffload")
    async def shelve_offload(request: Request, server: Server, arg: Any) -> Response:
        raise Conflict(f"Cannot 'shelveOffload' instance {server.id} while it is in vm_state {server.vm_state}: "
                       "shelved servers are offloaded at once here.")

    @action("unshelve")
    async def unshelve(request: Request, server: Server, arg: Any) -> Response:
        zone = host = None
        if isinstance(arg, dict):
            if "availability_zone" in arg and at_least(request, 77):
                zone = arg["availability_zone"]
                if zone is not None and (not isinstance(zone, str) or not zone):
                    raise BadRequest("availability_zone must be a non-empty string or null.")
            if "host" in arg and at_least(request, 91):
                if not allowed(request, "os_compute_api:os-shelve:unshelve_to_host", target_of(server)):
                    raise Forbidden("Only an admin may unshelve to a named host.")
                host = arg["host"]
        elif arg is not None:
            raise BadRequest("unshelve takes null or an object.")
        await manager.unshelve(server, zone, host)
        return accepted()

    # -- console, delete and restore ------------------------------------------------------------
    @action("os-getConsoleOutput")
    async def console_output(request: Request, server: Server, arg: Any) -> Response:
        length = arg.get("length") if isinstance(arg, dict) else None
        if length is not None:
            if isinstance(length, str) and length.lstrip("-").isdigit():
                length = int(length)
            if not isinstance(length, int) or isinstance(length, bool) or length < -1:
                raise BadRequest("length must be an integer >= -1 (or null for everything).")
            if length == -1:
                length = None
        return JSON({"output": await manager.console_output(server, length)})

    @action("forceDelete")
    async def force_delete(request: Request, server: Server, arg: Any) -> Response:
        if server.vm_state != "soft-delete":
            raise Conflict(f"Cannot 'forceDelete' instance {server.id} while it is in vm_state {server.vm_state}")
        await manager.delete(server, force=True)
        return accepted()

    @action("restore")
    async def restore(request: Request, server: Server, arg: Any) -> Response:
        await manager.restore(server)
        return accepted()

    # -- security groups (on the server's ports, through the Network API's tables) ---------------
    @action("addSecurityGroup")
    async def add_security_group(request: Request, server: Server, arg: Any) -> Response:
        await add_to_server(manager, server, arg)
        return accepted()

    @action("removeSecurityGroup")
    async def remove_security_group(request: Request, server: Server, arg: Any) -> Response:
        await remove_from_server(manager, server, arg)
        return accepted()

    @r.post("/v2.1/servers/{server_id}/action")
    async def dispatch(request: Request) -> Response:
        auth = auth_of(request)
        server_id = request.path_params["server_id"]
        server = await manager.get(server_id) if len(server_id) <= 36 else None
        if server is None or server.deleted_at is not None or (
                server.project_id != auth.project_id and not auth.is_admin()):
            raise NotFound(f"Instance {server_id} could not be found.")
        body = await json_body(request)
        if not isinstance(body, dict) or len(body) != 1:
            raise BadRequest("The body must name exactly one action.")
        name, arg = next(iter(body.items()))
        admin = auth.is_admin()
        if name not in RULES:
            raise BadRequest(f"The action {name!r} is not supported by this cloud.")
        authorize(request, RULES[name], target_of(server))
        if name in ("lock", "unlock"):
            reason = arg.get("locked_reason") if isinstance(arg, dict) and at_least(request, 73) else None
            if reason is not None and (not isinstance(reason, str) or len(reason) > 255):
                raise BadRequest("locked_reason must be a string of at most 255 characters.")
            await manager.set_locked(server, name == "lock", reason)
            return accepted()
        handler = handlers.get(name)
        if handler is None:
            raise BadRequest(f"The action {name!r} is not supported by this cloud.")
        if server.locked and not admin and name not in UNLOCKED:
            raise Conflict(f"Instance {server.id} is locked")
        return await handler(request, server, arg)

    return r
