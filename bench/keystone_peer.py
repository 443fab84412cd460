"""The peer for identity benchmarks: the real Keystone from PyPI, in its own virtualenv.

``start(workdir, bcrypt_rounds, workers)`` installs Keystone once (into
``$KEYSTONE_VENV``, default ``~/.cache/cumulo-bench/keystone-venv``), writes a keystone.conf with
SQLite, Fernet tokens, the in-memory cache on and bcrypt at the given cost, runs db_sync,
fernet_setup and bootstrap, and serves the public WSGI app with gunicorn (sync workers) on
127.0.0.1:5001.  It returns the process (its own session: stop it with killpg) and the admin login.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

KEYSTONE_VERSION = "30.0.0"
VENV = Path(os.environ.get("KEYSTONE_VENV", Path.home() / ".cache" / "cumulo-bench" / "keystone-venv"))
PORT = 5001
PASSWORD = "bench-admin-password"


def ensure_venv() -> Path:
    ready = VENV / ".ready"
    if not ready.exists():
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
        subprocess.check_call([str(VENV / "bin" / "pip"), "install", "-q", f"keystone=={KEYSTONE_VERSION}",
                               "gunicorn"])
        ready.touch()
    return VENV


def start(workdir: Path, bcrypt_rounds: int, workers: int) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    venv = ensure_venv()
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "keystone.conf"
    conf.write_text(f"""[DEFAULT]
debug = false
log_file = {workdir}/keystone.log
default_log_levels = keystone=WARNING,oslo_policy=WARNING,sqlalchemy=WARNING
[database]
connection = sqlite:///{workdir}/keystone.db
[token]
provider = fernet
[fernet_tokens]
key_repository = {workdir}/fernet-keys
[fernet_receipts]
key_repository = {workdir}/fernet-receipts
[credential]
key_repository = {workdir}/credential-keys
[cache]
enabled = true
backend = dogpile.cache.memory
[identity]
password_hash_algorithm = bcrypt
password_hash_rounds = {bcrypt_rounds}
""")
    manage = [str(venv / "bin" / "keystone-manage"), "--config-file", str(conf)]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.check_call([*manage, "db_sync"], **quiet)
    for what in ("fernet_setup", "credential_setup"):
        subprocess.check_call([*manage, what, "--keystone-user", "root", "--keystone-group", "root"], **quiet)
    url = f"http://127.0.0.1:{PORT}/v3"
    subprocess.check_call([*manage, "bootstrap", "--bootstrap-password", PASSWORD,
                           "--bootstrap-admin-url", url, "--bootstrap-public-url", url,
                           "--bootstrap-internal-url", url, "--bootstrap-region-id", "RegionOne"], **quiet)
    # Keystone parses sys.argv with oslo.config at start-up: hide gunicorn's arguments from it.
    (workdir / "keystone_app.py").write_text(
        "import sys\nsys.argv = sys.argv[:1]\n"
        "from keystone.server.wsgi import initialize_public_application\n"
        "application = initialize_public_application()\n")
    env = {**os.environ, "OS_KEYSTONE_CONFIG_FILES": str(conf)}
    proc = subprocess.Popen([str(venv / "bin" / "gunicorn"), "--workers", str(workers), "--bind",
                             f"127.0.0.1:{PORT}", "--log-level", "warning", "--chdir", str(workdir),
                             "keystone_app:application"],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=open(workdir / "gunicorn.log", "wb"))
    return proc, {"url": url, "user": "admin", "password": PASSWORD, "project": "admin"}
