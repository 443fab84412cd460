"""``cumulo canary`` against a real cloud: a QEMU node, the dataplane, block storage and object
storage, with the devstack-like first topology (the external network "public").

On the healthy cloud the canary passes every step, exports its metrics (a node_exporter textfile
from the command; the operator port's /metrics from the periodic mode of ``cumulo up``) and
leaves nothing of its own behind.  With the network agent not running the guest gets no address, the
canary names that step, exits 2, skips what needs it and still deletes everything it made.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.functional.conftest import BIN, Cloud, start_cloud, stop_cloud, wait_for
from tests.functional.test_qemu import qemu_pids

STEPS = ["auth", "image", "network", "server", "guest", "floating-ip", "object", "volume", "cleanup"]


ENV = {"CUMULO_SERVICES": "identity,image,compute,placement,network,volume,object",
       "CUMULO_COMPUTE__FAKE_NODES": "0", "CUMULO_COMPUTE__LOCAL_NODE": "true", "CUMULO_COMPUTE__HOST": "cnode",
       "CUMULO_COMPUTE__SHUTDOWN_TIMEOUT": "5", "CUMULO_COMPUTE__BUILD_TIMEOUT": "120",
       "CUMULO_NETWORK__DATAPLANE": "true", "CUMULO_NETWORK__BOOTSTRAP": "true",
       "CUMULO_NETWORK__RECONCILE_INTERVAL": "5"}


@pytest.fixture(scope="module")
def ccloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    tmp = tmp_path_factory.mktemp("cn")  # short: QEMU's monitor socket paths are limited to 107 bytes
    # the periodic canary: once, 20 s after the start (the first test reads its gauges on /metrics)
    c = start_cloud(tmp, "sqlite", {**ENV, "CUMULO_CANARY__INTERVAL": "100000", "CUMULO_CANARY__DELAY": "20"})
    yield c
    stop_cloud(c)
    for pid in qemu_pids(tmp):
        os.kill(pid, signal.SIGKILL)
    subprocess.run([str(BIN / "cumulo"), "network", "cleanup", "--yes"], env=c.env, capture_output=True, timeout=60)


def restart(c: Cloud, **env: str) -> None:
    """The same cloud (state, ports, prefix) started again with ``env`` on top."""
    stop_cloud(c)
    keep = {k: v for k, v in c.env.items() if k.startswith(("CUMULO_COMPUTE__", "CUMULO_NETWORK__",
                                                            "CUMULO_SERVICES")) and not k.endswith("PORT")}
    again = start_cloud(c.state_dir, "sqlite", {**keep, **env})
    for key in ("proc", "env", "url", "metrics_port", "image_url", "compute_url", "network_url", "volume_url",
                "object_url", "admin_password"):
        setattr(c, key, getattr(again, key))


def canary(c: Cloud, *args: str) -> tuple[int, dict[str, Any], str]:
    r = subprocess.run([str(BIN / "cumulo"), "canary", "--json", *args], env=c.env, capture_output=True,
                       text=True, timeout=600)
    assert r.stdout.strip(), r.stderr
    return r.returncode, json.loads(r.stdout), r.stderr


def leftovers(c: Cloud) -> dict[str, list[str]]:
    """Everything named like a canary's, in every service it touches."""
    token, body = c.token()
    h = {"X-Auth-Token": token}
    project = body["project"]["id"]

    def names(url: str, key: str) -> list[str]:
        r = httpx.get(url, headers=h, timeout=30)
        assert r.status_code == 200, r.text
        return [str(x.get("name") or x.get("description") or x.get("id")) for x in r.json()[key]]

    out = {
        "servers": names(f"{c.compute_url}/servers?all_tenants=1", "servers"),
        "images": names(f"{c.image_url}/v2/images", "images"),
        "networks": names(f"{c.network_url}/networks", "networks"),
        "routers": names(f"{c.network_url}/routers", "routers"),
        "ports": names(f"{c.network_url}/ports", "ports"),
        "security_groups": names(f"{c.network_url}/security-groups", "security_groups"),
        "volumes": names(f"{c.volume_url}/volumes?all_tenants=1", "volumes"),
    }
    fips = httpx.get(f"{c.network_url}/floatingips", headers=h, timeout=30).json()["floatingips"]
    out["floating_ips"] = [f["floating_ip_address"] for f in fips]
    r = httpx.get(f"{c.object_url}/v1/AUTH_{project}?format=json", headers=h, timeout=30)
    out["containers"] = [x["name"] for x in r.json()] if r.status_code == 200 else []
    return {k: [n for n in v if "canary" in n] if k != "floating_ips" else v for k, v in out.items()}


def metrics(c: Cloud) -> str:
    return httpx.get(f"http://127.0.0.1:{c.metrics_port}/metrics", timeout=10).text


def test_the_canary_passes_on_a_healthy_cloud_with_its_metrics_and_leaves_nothing(ccloud: Cloud) -> None:
    # the periodic mode of `cumulo up` ran once (20 s after the start) and passed
    def ran() -> str | None:
        m = metrics(ccloud)
        return m if "cumulo_canary_last_run_timestamp_seconds " in m else None

    text = wait_for(ran, 300, "the periodic canary's gauges on /metrics", every=2)
    assert "cumulo_canary_success 1.0" in str(text), [line for line in str(text).splitlines() if "canary" in line]
    for step in STEPS:
        assert f'cumulo_canary_step_success{{step="{step}"}} 1.0' in str(text), step
    before = leftovers(ccloud)
    assert not any(before[k] for k in before if k != "floating_ips"), before
    textfile = ccloud.state_dir / "textfile" / "cumulo_canary.prom"
    code, run, err = canary(ccloud, "--textfile", str(textfile))
    assert code == 0, run
    assert run["success"] is True and run["failed"] == []
    assert [s["name"] for s in run["steps"]] == STEPS
    assert all(s["ok"] is True and s["seconds"] > 0 for s in run["steps"]), run["steps"]
    by = {s["name"]: s for s in run["steps"]}
    assert "answers 'cumulo-canary-" in by["floating-ip"]["detail"]  # the guest's HTTP server said its name
    assert "the guest sees it as /dev/vd" in by["volume"]["detail"]
    print("\ncanary steps:", ", ".join(f"{s['name']} {s['seconds']:.2f} s" for s in run["steps"]),
          f"total {run['seconds']:.1f} s")
    prom = textfile.read_text()
    assert "cumulo_canary_success 1.0" in prom
    stamp = next(line.split()[1] for line in prom.splitlines()
                 if line.startswith("cumulo_canary_last_run_timestamp_seconds "))
    assert abs(float(stamp) - run["started"]) < 1
    for step in STEPS:
        assert f'cumulo_canary_step_success{{step="{step}"}} 1.0' in prom
        assert f'cumulo_canary_step_seconds{{step="{step}"}}' in prom
    assert leftovers(ccloud) == before  # no server, image, network, router, port, group, volume, FIP, container
    # the human form: a line a step, the verdict last
    r = subprocess.run([str(BIN / "cumulo"), "canary"], env=ccloud.env, capture_output=True, text=True, timeout=600)
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 0, r.stdout
    assert [line.split()[1] for line in lines[:-1]] == STEPS and lines[-1].startswith("canary: passed in ")
    assert leftovers(ccloud) == before


def test_the_textfile_says_failure_and_the_step(ccloud: Cloud, tmp_path: Path) -> None:
    """A canary that cannot sign in: exit 2, auth named, everything else skipped, the textfile's
    gauges at 0 (the alert's input), nothing made."""
    bad = tmp_path / "clouds.yaml"
    bad.write_text(f"clouds:\n  wrong:\n    auth:\n      auth_url: {ccloud.url}\n      username: admin\n"
                   "      password: not-the-password\n      project_name: admin\n")
    prom = tmp_path / "c.prom"
    r = subprocess.run([str(BIN / "cumulo"), "canary", "--cloud", "wrong", "--textfile", str(prom)],
                       env={**ccloud.env, "OS_CLIENT_CONFIG_FILE": str(bad)}, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, r.stdout
    assert "canary: auth         FAILED" in r.stdout and "401" in r.stdout, r.stdout
    assert r.stdout.strip().splitlines()[-1].startswith("canary: FAILED at auth (")
    text = prom.read_text()
    assert "cumulo_canary_success 0.0" in text and 'cumulo_canary_step_success{step="auth"} 0.0' in text
    assert 'cumulo_canary_step_success{step="cleanup"} 1.0' in text


def test_without_the_network_agent_the_canary_names_the_step_exits_2_and_cleans_up(ccloud: Cloud) -> None:
    """The cloud again with its network agent not running ([network] dataplane = false: what was
    built stays, nothing new is): the canary's new network gets no DHCP."""
    before = leftovers(ccloud)
    restart(ccloud, CUMULO_NETWORK__DATAPLANE="false", CUMULO_CANARY__INTERVAL="0")
    started = time.monotonic()
    code, run, err = canary(ccloud, "--timeout", "60")
    assert code == 2, run
    by = {s["name"]: s for s in run["steps"]}
    # the server runs, but no DHCP answers on its new network: the guest comes up without its address
    assert run["failed"] == ["guest"], run["steps"]
    assert "without its address" in by["guest"]["detail"], by["guest"]
    assert by["floating-ip"]["ok"] is None and by["volume"]["ok"] is None  # skipped: they need the guest
    assert "needs guest" in by["floating-ip"]["detail"]
    assert by["object"]["ok"] is True and by["cleanup"]["ok"] is True, run["steps"]
    assert time.monotonic() - started < 300
    assert leftovers(ccloud) == before
