"""What the benchmarks share: starting and stopping a throw-away Cumulo, waiting for a URL."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Endpoint:
    name: str
    url: str  # .../v3
    user: str
    password: str
    project: str


def wait_up(url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the service exited with {proc.returncode} before answering")
        try:
            if httpx.get(url, timeout=1).status_code in (200, 300):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer in {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start_cumulo(workdir: Path, rounds: int, port: int = 5002,
                 extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], Endpoint]:
    state = workdir / "cumulo"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUMULO_", "OS_"))}
    env.update(CUMULO_STATE_DIR=str(state), CUMULO_IDENTITY__PORT=str(port), CUMULO_METRICS__PORT=str(port + 4000),
               CUMULO_IDENTITY__PASSWORD_HASH_ROUNDS=str(rounds), CUMULO_BOOTSTRAP__WRITE_USER_CLOUDS="false",
               CUMULO_LOGGING__LEVEL="WARNING", CUMULO_LOGGING__FILE=str(workdir / "cumulo.log"),
               CUMULO_COMPUTE__LOCAL_NODE="false", CUMULO_NETWORK__DATAPLANE="false", CUMULO_NETWORK__BOOTSTRAP="false",
               CUMULO_NETWORK__NAMESPACE_PREFIX=f"cumulo-bench-{os.getpid()}")
    env.update(extra_env or {})
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "cumulo"), "up"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=open(workdir / "cumulo.stderr", "wb"))
    url = f"http://127.0.0.1:{port}/v3"
    wait_up(url, proc)
    while not (state / "clouds.yaml").exists():
        time.sleep(0.1)
    auth = yaml.safe_load((state / "clouds.yaml").read_text())["clouds"]["cumulo"]["auth"]
    return proc, Endpoint("cumulo", url, auth["username"], auth["password"], auth["project_name"])




def admin_session(ep: Endpoint) -> tuple[dict[str, str], str]:
    """Headers with an admin token (compute microversion 2.47) and the admin project's id."""
    r = httpx.post(f"{ep.url}/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": ep.user, "domain": {"id": "default"}, "password": ep.password}}},
        "scope": {"project": {"name": ep.project, "domain": {"id": "default"}}}}})
    r.raise_for_status()
    return ({"X-Auth-Token": r.headers["x-subject-token"], "OpenStack-API-Version": "compute 2.47"},
            r.json()["token"]["project"]["id"])
