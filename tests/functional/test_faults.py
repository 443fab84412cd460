"""The fault matrix of ``bench/faults.py`` in a bounded form: boot/delete cycles on fake nodes with
kill -9 of the controller and of an agent, real QEMU guests with kills, RabbitMQ and PostgreSQL
restarted during boots; afterwards nothing is transitional, leaked or lost."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import sys
import time
import uuid
from pathlib import Path

from tests.functional.conftest import RABBIT, ROOT

sys.path.insert(0, str(ROOT))

from bench import faults  # noqa: E402


def test_faults_leave_nothing_behind(tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    seed = int(os.environ.get("CUMULO_FAULTS_SEED") or random.SystemRandom().randrange(1 << 32))
    qemu = 3 if shutil.which("qemu-system-x86_64") and os.geteuid() == 0 else 0
    workdir = Path(faults.tempfile.mkdtemp(prefix="cf-", dir="/tmp"))  # short: QEMU's socket paths
    rows, violations = faults.run(seed, fake=30, qemu=qemu, rabbit=15, postgres=10, workdir=workdir)
    names = [name for name, *_ in rows]
    assert names[:6] == ["fake", "fake/deleted", "rabbit", "rabbit/deleted", "postgres", "postgres/deleted"]
    if qemu:
        assert names[6:] == ["qemu", "qemu/deleted", "qemu/network deleted"]
    assert sum(kills for _, _, kills, _ in rows) > 0, "the matrix injected no fault"
    bad = {f"{name} {kind}": items for name, _, _, found in rows for kind, items in found.items() if items}
    assert violations == 0, f"seed {seed} (CUMULO_FAULTS_SEED={seed} replays it): {bad}"
    shutil.rmtree(workdir, ignore_errors=True)


def test_rpc_calls_and_casts_work_across_a_rabbitmq_restart() -> None:
    """The matrix found it: after a broker restart every RPC call failed for good ("fast reply
    consumer does not exist": the direct reply-to consumer was not restored), and a cast while the
    connection was down raised instead of waiting for it."""
    from cumulo.core.bus.rabbit import RabbitBus

    async def scenario() -> tuple[object, list[str], float]:
        prefix = f"cumulo-test-{uuid.uuid4().hex[:8]}"
        caller, server = RabbitBus(RABBIT, 20, prefix), RabbitBus(RABBIT, 20, prefix)
        await caller.start()
        await server.start()
        seen: list[str] = []

        async def handler(method: str, args: dict) -> dict:
            seen.append(method)
            return {"echo": args}

        try:
            await server.serve("target", handler)
            assert await caller.call("target", "before", {"n": 1}) == {"echo": {"n": 1}}
            started = time.monotonic()
            proc = await asyncio.create_subprocess_exec("rabbitmqctl", "-q", "stop_app")
            await proc.wait()
            down = asyncio.create_task(caller.cast("target", "while-down", {}))  # waits for the broker
            await asyncio.sleep(0.5)
            assert not down.done()
            proc = await asyncio.create_subprocess_exec("rabbitmqctl", "-q", "start_app")
            await proc.wait()
            await asyncio.wait_for(down, 20)
            reply = await caller.call("target", "after", {"n": 2})
            deadline = time.monotonic() + 10
            while "while-down" not in seen and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            return reply, seen, time.monotonic() - started
        finally:
            await caller.stop()
            await server.stop()

    try:
        reply, seen, _ = asyncio.run(scenario())
    finally:
        faults.ensure_services()
    assert reply == {"echo": {"n": 2}}
    assert seen == ["before", "while-down", "after"]


def test_a_delete_cut_short_after_it_committed_still_frees_the_claim(tmp_path: Path) -> None:
    """The matrix found it (a controller killed -9 0.64 s into a delete): the server was marked
    deleted, the controller died before it released the placement claim, and nothing ever did.
    Here the delete runs in a controller that dies right after that commit; the restarted
    controller's reconciler releases the claim."""
    import httpx

    from cumulo.compute.servers import ServerManager
    from cumulo.core.bus.memory import MemoryBus
    from cumulo.core.config import load
    from cumulo.core.db import Database
    from cumulo.placement.service import PlacementService
    from tests.functional.conftest import start_cloud, stop_cloud

    cloud = start_cloud(tmp_path, "sqlite", {"CUMULO_COMPUTE__FAKE_NODES": "1"})
    try:
        token = cloud.token()[0]
        headers = {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.47"}
        image = httpx.get(f"{cloud.image_url}/v2/images?name=cumulo-tiny", headers=headers).json()["images"][0]
        r = httpx.post(f"{cloud.compute_url}/servers", headers=headers, json={"server": {
            "name": "cut-short", "flavorRef": "10", "imageRef": image["id"], "networks": "none"}})
        assert r.status_code == 202, r.text
        sid = r.json()["server"]["id"]
        deadline = time.monotonic() + 30
        while httpx.get(f"{cloud.compute_url}/servers/{sid}", headers=headers).json()["server"]["status"] != "ACTIVE":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert httpx.get(f"{cloud.placement_url}/allocations/{sid}", headers=headers).json()["allocations"]
    finally:
        stop_cloud(cloud)

    class Died(BaseException):
        """The controller's process ends here (kill -9)."""

    async def delete_then_die() -> None:
        cfg = load(env=cloud.env)
        db = Database(cfg.database_url)
        manager = ServerManager.__new__(ServerManager)  # only what a delete touches
        manager.db, manager.network, manager.bus, manager.placement = db, None, MemoryBus(), PlacementService(db)

        async def cleanup(server_id: str, steps: list[str]) -> list[str]:
            if any(step.startswith("claims:") for step in steps):
                raise Died  # after the row says deleted, before the claim is released
            return []

        manager._cleanup = cleanup  # type: ignore[method-assign]
        server = await manager.get(sid)
        assert server is not None
        try:
            await manager.hard_delete(server)
        except Died:
            pass
        await db.engine.dispose()

    asyncio.run(delete_then_die())
    keep = {k: v for k, v in cloud.env.items() if k.startswith("CUMULO_COMPUTE__") and not k.endswith("PORT")}
    again = start_cloud(tmp_path, "sqlite", keep)
    try:
        token = again.token()[0]
        headers = {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.47"}
        assert httpx.get(f"{again.compute_url}/servers/{sid}", headers=headers).status_code == 404
        deadline = time.monotonic() + 30
        while httpx.get(f"{again.placement_url}/allocations/{sid}", headers=headers).json()["allocations"]:
            assert time.monotonic() < deadline, "the claim of the deleted server was never released"
            time.sleep(0.5)
    finally:
        stop_cloud(again)
