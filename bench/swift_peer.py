"""The peer for object storage benchmarks: OpenStack Swift from PyPI, single node, in its own virtualenv.

``ensure_venv()`` installs Swift once (into ``$SWIFT_VENV``, default
``~/.cache/cumulo-bench/swift-venv``; nothing fetched is kept in the repository).  ``start(workdir,
ports)`` lays out a one-machine Swift under ``workdir``:

* three device directories (``srv/d1..d3``; the filesystem must take ``user.`` xattrs: ext4/xfs do,
  old tmpfs does not), ``mount_check = false``;
* account, container and object rings built with ``swift-ring-builder`` (part power 10 like
  Cumulo's default ring, 3 replicas, the three devices in three zones);
* storage policy 0, replication (no erasure coding, so liberasurecode is not exercised);
* account, container and object servers and the proxy, each with ``workers = 1`` (Swift forks one
  serving process under a small supervisor), no replicators/auditors/updaters (Cumulo's replicator
  is pushed out of the benchmark's way too);
* a private memcached (the proxy caches account/container info and tempauth's tokens there, as
  every real deployment does) and tempauth with one reseller admin ``admin:admin``;
* the proxy pipeline of Swift's sample proxy-server.conf without container_sync and ratelimit.

It returns the processes (each in its own session) and the storage URL and token.  ``stop`` ends
exactly those processes.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

SWIFT_SPEC = "swift==2.38.*"
VENV = Path(os.environ.get("SWIFT_VENV", Path.home() / ".cache" / "cumulo-bench" / "swift-venv"))
PIPELINE = ("catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempurl "
            "tempauth copy container-quotas account-quotas slo dlo versioned_writes symlink "
            "proxy-logging proxy-server")
FILTERS = {
    "catch_errors": "catch_errors", "gatekeeper": "gatekeeper", "healthcheck": "healthcheck",
    "proxy-logging": "proxy_logging", "cache": "memcache", "listing_formats": "listing_formats",
    "bulk": "bulk", "tempurl": "tempurl", "copy": "copy", "container-quotas": "container_quotas",
    "account-quotas": "account_quotas", "slo": "slo", "dlo": "dlo", "versioned_writes": "versioned_writes",
    "symlink": "symlink",
}


def ensure_venv() -> Path:
    ready = VENV / ".ready"
    if not ready.exists():
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
        subprocess.check_call([str(VENV / "bin" / "pip"), "install", "-q", SWIFT_SPEC])
        ready.touch()
    return VENV


def version() -> str:
    out = subprocess.run([str(VENV / "bin" / "python"), "-c", "import swift; print(swift.__version__)"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"


def check_xattrs(directory: Path) -> None:
    probe = directory / ".xattr-probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.cumulo-bench", b"1")
    except OSError as e:
        raise SystemExit(f"{directory} does not take user xattrs ({e}); Swift's object server needs them: "
                         "pass --workdir on ext4 or xfs") from e
    finally:
        probe.unlink()


def _conf(workdir: Path, port: int, body: str) -> str:
    return (f"[DEFAULT]\nswift_dir = {workdir}\ndevices = {workdir}/srv\nmount_check = false\n"
            f"bind_ip = 127.0.0.1\nbind_port = {port}\nworkers = 1\nlog_level = WARNING\n"
            f"user = {pwd.getpwuid(os.geteuid()).pw_name}\nlog_name = bench\nlog_facility = LOG_LOCAL7\n\n{body}")


def start(workdir: Path, ports: dict[str, int]) -> tuple[list[subprocess.Popen[bytes]], str, str]:
    """``ports``: proxy, account, container, object, memcached."""
    venv = ensure_venv()
    bin_ = venv / "bin"
    workdir.mkdir(parents=True, exist_ok=True)
    check_xattrs(workdir)
    for d in ("d1", "d2", "d3"):
        (workdir / "srv" / d).mkdir(parents=True, exist_ok=True)
    (workdir / "swift.conf").write_text(
        "[swift-hash]\nswift_hash_path_suffix = cumulo-bench\nswift_hash_path_prefix = cumulo-bench\n\n"
        "[storage-policy:0]\nname = gold\ndefault = yes\npolicy_type = replication\n")
    for kind in ("account", "container", "object"):
        builder = str(workdir / f"{kind}.builder")
        quiet = {"stdout": subprocess.DEVNULL}
        subprocess.check_call([str(bin_ / "swift-ring-builder"), builder, "create", "10", "3", "1"], **quiet)
        for zone, d in enumerate(("d1", "d2", "d3"), 1):
            subprocess.check_call([str(bin_ / "swift-ring-builder"), builder, "add", "--region", "1",
                                   "--zone", str(zone), "--ip", "127.0.0.1", "--port", str(ports[kind]),
                                   "--device", d, "--weight", "100"], **quiet)
        # rebalance exits 1 on warnings (e.g. balance), 2 on errors
        rc = subprocess.call([str(bin_ / "swift-ring-builder"), builder, "rebalance"], **quiet)
        if rc > 1:
            raise SystemExit(f"swift-ring-builder {kind} rebalance failed ({rc})")
    confs = {
        "account": "[pipeline:main]\npipeline = account-server\n\n[app:account-server]\n"
                   "use = egg:swift#account\n",
        "container": "[pipeline:main]\npipeline = container-server\n\n[app:container-server]\n"
                     "use = egg:swift#container\n",
        "object": "[pipeline:main]\npipeline = object-server\n\n[app:object-server]\nuse = egg:swift#object\n",
    }
    filters = "".join(f"[filter:{name}]\nuse = egg:swift#{egg}\n"
                      + (f"memcache_servers = 127.0.0.1:{ports['memcached']}\n" if name == "cache" else "")
                      + "\n" for name, egg in FILTERS.items())
    confs["proxy"] = (f"[pipeline:main]\npipeline = {PIPELINE}\n\n[app:proxy-server]\nuse = egg:swift#proxy\n"
                      "account_autocreate = true\n\n"
                      "[filter:tempauth]\nuse = egg:swift#tempauth\n"
                      "user_admin_admin = admin .admin .reseller_admin\n\n" + filters)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(subprocess.Popen(["memcached", "-l", "127.0.0.1", "-p", str(ports["memcached"]), "-U", "0",
                                       "-m", "64", "-u", pwd.getpwuid(os.geteuid()).pw_name],
                                      start_new_session=True, stdout=subprocess.DEVNULL,
                                      stderr=open(workdir / "memcached.log", "wb")))
        for kind in ("account", "container", "object", "proxy"):
            conf = workdir / f"{kind}-server.conf"
            conf.write_text(_conf(workdir, ports[kind], confs[kind]))
            procs.append(subprocess.Popen([str(bin_ / f"swift-{kind}-server"), str(conf)], start_new_session=True,
                                          stdout=subprocess.DEVNULL, stderr=open(workdir / f"{kind}.log", "wb")))
        url = f"http://127.0.0.1:{ports['proxy']}"
        deadline = time.monotonic() + 60
        while True:
            for p in procs:
                if p.poll() is not None:
                    raise SystemExit(f"a Swift process exited ({p.args[0]}, {p.returncode}); see {workdir}/*.log")
            try:
                r = httpx.get(f"{url}/auth/v1.0", headers={"X-Auth-User": "admin:admin", "X-Auth-Key": "admin"},
                              timeout=2)
                if r.status_code == 200:
                    return procs, r.headers["x-storage-url"], r.headers["x-auth-token"]
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"Swift's proxy did not answer in 60 s; see {workdir}/*.log")
            time.sleep(0.3)
    except BaseException:
        stop(procs)
        raise


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each started process's own session (a Swift server and its forked worker), then
    SIGKILL whatever is left after 10 s."""
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 10
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def remove(workdir: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
