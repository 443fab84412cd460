"""`cumulo upgrade check` and `cumulo upgrade` on one SQLite cloud with fake nodes: the checks'
results and exit codes (0/1/2), agents of an older release reporting over the real bus, renamed
options named with their new names, and an upgrade of a stopped copy with its rollback."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cumulo.core.version import code_version, parse
from cumulo.ops.upgrade import AGENT_VERSIONS_REVISION, exit_code, known_revisions, run_checks

from .conftest import BIN, Cloud, start_cloud, stop_cloud, wait_for

HEAD = known_revisions()[-1]
PREVIOUS = known_revisions()[-2]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    state = tmp_path_factory.mktemp("upgrade")
    c = start_cloud(state, "sqlite", {"CUMULO_SERVICES": "identity,image,compute,placement,network,volume",
                                      "CUMULO_IMAGE__UPLOAD_GUEST_IMAGES": "false"})
    yield c
    stop_cloud(c)


def cumulo(cloud: Cloud, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "cumulo"), *args], env={**cloud.env, **env}, capture_output=True, text=True,
                          timeout=120)


def rows(db: Path, query: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(db)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def copy_database(cloud: Cloud, dest: Path) -> Path:
    """A consistent copy of the running cloud's database (SQLite's online backup)."""
    src, out = sqlite3.connect(cloud.state_dir / "cumulo.db"), sqlite3.connect(dest)
    try:
        src.backup(out)
    finally:
        src.close()
        out.close()
    return dest


def downgrade_one(db: Path) -> None:
    """alembic downgrade -1 on a database file, as `cumulo db sync` hands Alembic its connection."""
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from sqlalchemy import create_engine

    from cumulo.core.db import MIGRATIONS

    engine = create_engine(f"sqlite:///{db}")  # (PostgreSQL: downgrade_one_url)
    try:
        with engine.begin() as conn:
            cfg = AlembicConfig()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "-1")
    finally:
        engine.dispose()


def test_check_on_a_current_cloud_exits_0(cloud: Cloud) -> None:
    db = cloud.state_dir / "cumulo.db"
    wait_for(lambda: rows(db, "SELECT host FROM compute_service WHERE version IS NOT NULL"), 20,
             "the fake nodes' first versioned reports")
    assert {v for (v,) in rows(db, "SELECT version FROM compute_service")} == {code_version()}
    wait_for(lambda: rows(db, "SELECT host FROM volume_pool WHERE version IS NOT NULL"), 20,
             "the volume agent's versioned report")
    out = cumulo(cloud, "upgrade", "check")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Upgrade Check Results" in out.stdout and "Warning" not in out.stdout and "Failure" not in out.stdout
    for check in ("Database schema", "Data migrations", "Agent versions", "Configuration options", "Running cloud"):
        assert f"Check: {check}" in out.stdout
    said = " ".join(out.stdout.replace("|", " ").split())  # the table wraps long details
    assert f"at {HEAD}" in said and "is this version" in said


def test_json_parses_with_every_check(cloud: Cloud) -> None:
    out = cumulo(cloud, "upgrade", "check", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["code"] == 0 and doc["version"] == code_version()
    assert [c["check"] for c in doc["checks"]] == ["Configuration options", "Database schema", "Data migrations",
                                                   "Agent versions", "Running cloud"]
    assert {c["result"] for c in doc["checks"]} == {"Success"}


def test_a_database_one_revision_behind_names_db_sync(cloud: Cloud, tmp_path: Path) -> None:
    db = copy_database(cloud, tmp_path / "copy.db")
    downgrade_one(db)
    assert rows(db, "SELECT version_num FROM alembic_version") == [(PREVIOUS,)]
    out = cumulo(cloud, "upgrade", "check", "--json", CUMULO_DATABASE__URL=f"sqlite:///{db}")
    assert out.returncode == 1, out.stdout + out.stderr
    schema = next(c for c in json.loads(out.stdout)["checks"] if c["check"] == "Database schema")
    assert schema["result"] == "Warning" and "`cumulo db sync`" in schema["details"] and PREVIOUS in schema["details"]


def test_a_database_newer_than_the_code_fails(cloud: Cloud, tmp_path: Path) -> None:
    db = copy_database(cloud, tmp_path / "copy.db")
    con = sqlite3.connect(db)
    con.execute("UPDATE alembic_version SET version_num = '0099_from_a_newer_release'")
    con.commit()
    con.close()
    out = cumulo(cloud, "upgrade", "check", CUMULO_DATABASE__URL=f"sqlite:///{db}")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "this code is older than the database" in " ".join(out.stdout.replace("|", " ").split())


def previous_minor() -> str:
    """A patch release of the minor release before this code's (0.2.0 -> 0.1.9)."""
    major, minor, _ = parse(code_version()) or (0, 0, 0)
    assert minor > 0, code_version()
    return f"{major}.{minor - 1}.9"


def add_old_agents(db: Path) -> None:
    """Two compute services of earlier releases, as the conductor records their heartbeats: one
    of the previous minor release, one from before versioned reports (no version; its envelope had no v either, which
    tests/unit/test_bus_versions.py sends through the hub)."""
    con = sqlite3.connect(db)
    try:
        for host, version in (("old-node", previous_minor()), ("older-node", None)):
            con.execute("INSERT INTO compute_service (id, host, \"binary\", disabled, forced_down, last_seen_at, "
                        "created_at, updated_at, version) VALUES (?, ?, 'nova-compute', 0, 0, "
                        "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, ?)", (f"id-{host}", host, version))
        con.commit()
    finally:
        con.close()


def test_agents_of_older_releases_are_named(cloud: Cloud) -> None:
    db = cloud.state_dir / "cumulo.db"
    add_old_agents(db)
    out = cumulo(cloud, "upgrade", "check", "--json")
    assert out.returncode == 1, out.stdout + out.stderr
    agents = next(c for c in json.loads(out.stdout)["checks"] if c["check"] == "Agent versions")
    assert agents["result"] == "Warning"
    assert f"compute agent on old-node runs {previous_minor()}, one minor release behind" in agents["details"]
    assert "compute agent on older-node reports no version" in agents["details"]
    # an agent of a later release than the controllers is a failure: controllers go first
    con = sqlite3.connect(db)
    con.execute("UPDATE compute_service SET version = '9.0.0' WHERE host = 'older-node'")
    con.commit()
    con.close()
    results, _cfg = run_checks(None, str(cloud.state_dir))  # in-process: the same checks, no CLI start
    assert exit_code(results) == 2
    agents = next(r for r in results if r.check == "Agent versions")
    assert agents.result == "Failure" and "older-node runs 9.0.0, newer than this controller code" in agents.details
    con = sqlite3.connect(db)
    con.execute("DELETE FROM compute_service WHERE host IN ('old-node', 'older-node')")
    con.commit()
    con.close()


def test_a_renamed_option_is_named_with_its_new_name(cloud: Cloud, tmp_path: Path) -> None:
    config = tmp_path / "cumulo.toml"
    config.write_text("[compute]\nfake_node_count = 2\nreport_interval = 1\n\n[bogus]\nsetting = 1\n")
    # RENAMED is empty up to 0.1.0 (nothing was renamed yet): the check is given a one-row table
    results, cfg = run_checks(str(config), str(cloud.state_dir),
                              renamed={"compute.fake_node_count": "compute.fake_nodes"})
    found = {r.check: r for r in results}
    options = found["Configuration options"]
    assert options.result == "Failure"
    assert "[compute] fake_node_count is now [compute] fake_nodes: rename it" in options.details
    assert "[bogus] setting is not an option of this version" in options.details
    # the other checks still ran, with the option under its new name
    assert cfg.compute.fake_nodes == 2 and found["Database schema"].result == "Success"
    # through the command line (the shipped table): the file's unknown options named, exit 2
    out = cumulo(cloud, "--config", str(config), "upgrade", "check")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "[compute] fake_node_count is not an option" in " ".join(out.stdout.replace("|", " ").split())


def test_upgrade_refuses_while_the_cloud_runs(cloud: Cloud, tmp_path: Path) -> None:
    out = cumulo(cloud, "upgrade", "--no-encrypt", "--to", str(tmp_path / "backups"))
    assert out.returncode == 1
    said = " ".join(out.stderr.split())
    assert "a cloud is running" in said and "stop it" in said and "the controllers" in said
    assert not (tmp_path / "backups").exists()


def test_upgrade_backs_up_migrates_and_rolls_back(cloud: Cloud, tmp_path: Path) -> None:
    """A stopped cloud one migration behind (a copy of this one's database, downgraded):
    `cumulo upgrade` backs up, migrates to this code's head and prints the restart order; the
    rollback (`cumulo restore --force` of its backup) brings the old schema back."""
    state = tmp_path / "state"
    state.mkdir()
    downgrade_one(copy_database(cloud, state / "cumulo.db"))
    if (cloud.state_dir / "fernet-keys").is_dir():
        shutil.copytree(cloud.state_dir / "fernet-keys", state / "fernet-keys")
    env = {"CUMULO_STATE_DIR": str(state), "CUMULO_LOGGING__FILE": str(state / "cumulo.log")}
    out = cumulo(cloud, "upgrade", "--no-encrypt", "--to", str(tmp_path / "backups"), "-q", **env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"schema {PREVIOUS} -> {HEAD}" in out.stdout
    said = " ".join(out.stdout.split())
    assert said.index("the controllers") < said.index("then the agents") and "cumulo restore --force" in said
    record = json.loads((state / "last-upgrade.json").read_text())
    assert record["schema_before"] == PREVIOUS and record["schema_after"] == HEAD
    assert Path(record["backup"]).is_dir() and Path(record["backup"]).parent == tmp_path / "backups"
    assert rows(state / "cumulo.db", "SELECT version_num FROM alembic_version") == [(HEAD,)]
    found = {r.check: r for r in run_checks(None, str(state))[0]}
    assert found["Database schema"].result == "Success" and found["Running cloud"].result == "Success"
    if known_revisions().index(PREVIOUS) < known_revisions().index(AGENT_VERSIONS_REVISION):
        # the copied nodes' rows lost their versions with the downgrade: named until they report again
        assert found["Agent versions"].result == "Warning" and "reports no version" in found["Agent versions"].details
    else:  # a later migration was undone: the versions stayed
        assert found["Agent versions"].result == "Success", found["Agent versions"]
    # the rollback
    out = cumulo(cloud, "restore", "--force", "-q", record["backup"], **env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert rows(state / "cumulo.db", "SELECT version_num FROM alembic_version") == [(PREVIOUS,)]


def downgrade_one_url(url: str) -> None:
    """alembic downgrade -1 through the cloud's own async engine (PostgreSQL: asyncpg)."""
    import asyncio

    from alembic import command
    from alembic.config import Config as AlembicConfig

    from cumulo.core.db import MIGRATIONS, Database

    def down(connection: Any) -> None:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "-1")

    async def go() -> None:
        database = Database(url)
        try:
            async with database.engine.begin() as conn:
                await conn.run_sync(down)
        finally:
            await database.close()

    asyncio.run(go())


def pg_revision(url: str) -> str:
    out = subprocess.run(["psql", "-XAtq", "-d", url, "-c", "SELECT version_num FROM alembic_version"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_check_upgrade_and_rollback_on_postgresql(tmp_path: Path) -> None:
    """The same on PostgreSQL: the checks through asyncpg, the backup `cumulo upgrade` takes with
    pg_dump, the migration, and the rollback with pg_restore."""
    from .conftest import _drop_pg_database

    state = tmp_path / "state"
    state.mkdir()
    c = start_cloud(state, "postgres", {"CUMULO_SERVICES": "identity,image,compute,placement,network",
                                        "CUMULO_IMAGE__UPLOAD_GUEST_IMAGES": "false"})
    url = c.env["CUMULO_DATABASE__URL"]
    try:
        wait_for(lambda: cumulo(c, "upgrade", "check").returncode == 0, 30, "the checks all succeeding on PostgreSQL")
        doc = json.loads(cumulo(c, "upgrade", "check", "--json").stdout)
        assert {x["check"]: x["result"] for x in doc["checks"]} == {
            "Configuration options": "Success", "Database schema": "Success", "Data migrations": "Success",
            "Agent versions": "Success", "Running cloud": "Success"}
        stop_cloud(c)
        downgrade_one_url(url)
        assert pg_revision(url) == PREVIOUS
        out = cumulo(c, "upgrade", "check", "--json")
        assert out.returncode == 1, out.stdout + out.stderr
        schema = next(x for x in json.loads(out.stdout)["checks"] if x["check"] == "Database schema")
        assert schema["result"] == "Warning" and PREVIOUS in schema["details"]
        out = cumulo(c, "upgrade", "--no-encrypt", "--to", str(tmp_path / "backups"), "-q")
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"schema {PREVIOUS} -> {HEAD}" in out.stdout and pg_revision(url) == HEAD
        record = json.loads((state / "last-upgrade.json").read_text())
        manifest = json.loads((Path(record["backup"]) / "manifest.json").read_text())
        assert manifest["database"]["backend"] == "postgresql" and manifest["schema_revision"] == PREVIOUS
        out = cumulo(c, "restore", "--force", "-q", record["backup"])  # the rollback
        assert out.returncode == 0, out.stdout + out.stderr
        assert pg_revision(url) == PREVIOUS
    finally:
        stop_cloud(c)
        _drop_pg_database(url.rsplit("/", 1)[1])


# the last commit of main before versioned bus messages and agents' versions (8026fce): its agents
# send envelopes without `v` (version 1) and report no version, as a 0.1 agent does (no release
# was tagged before 0.2.0: CHANGELOG.md)
OLD_COMMIT = "162776a"
REPO = Path(__file__).resolve().parents[2]


def old_code(dest: Path) -> Path | None:
    """The old commit's cumulo package in ``dest`` (git archive: the shared repository is not touched)."""
    if subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{OLD_COMMIT}^{{commit}}"],
                      capture_output=True).returncode != 0:
        return None
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", OLD_COMMIT, "cumulo"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def test_an_agent_of_the_previous_code_serves_the_new_controller_until_it_is_upgraded(tmp_path: Path) -> None:
    """A HEAD controller over RabbitMQ with one compute agent still on the old code: it is named by
    the check, a server is built on it, and once that agent is upgraded (stopped, started on the new
    code) the server is still ACTIVE and the agent reports this version."""
    import signal
    import uuid

    import httpx

    from .conftest import RABBIT, unique

    old = old_code(tmp_path / "old")
    if old is None:
        pytest.skip(f"the repository has no commit {OLD_COMMIT} (a shallow clone)")
    state = tmp_path / "state"
    state.mkdir()
    c = start_cloud(state, "sqlite", {"CUMULO_SERVICES": "identity,image,compute,placement,network",
                                      "CUMULO_IMAGE__UPLOAD_GUEST_IMAGES": "false", "CUMULO_COMPUTE__FAKE_NODES": "0",
                                      "CUMULO_BUS__URL": RABBIT,
                                      "CUMULO_BUS__PREFIX": f"cumulo-test-{uuid.uuid4().hex[:8]}"})
    agents: list[subprocess.Popen[bytes]] = []

    def agent(code: Path | None, log: str) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in c.env.items() if k != "CUMULO_LOGGING__FILE"}
        if code is None:
            cmd = [str(BIN / "cumulo"), "agent", "--host", "old-node", "--fake"]
        else:
            env["PYTHONPATH"] = str(code)
            cmd = [str(BIN / "python"), "-c", "from cumulo.cli.main import main; main()", "agent", "--host",
                   "old-node", "--fake"]
        p = subprocess.Popen(cmd, env=env, cwd=code or REPO, stdout=subprocess.DEVNULL,
                             stderr=open(tmp_path / log, "wb"), start_new_session=True)
        agents.append(p)
        return p

    def stop(p: subprocess.Popen[bytes]) -> None:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    try:
        token = c.token()[0]
        h = {"X-Auth-Token": token}
        nova = {**h, "OpenStack-API-Version": "compute 2.79"}
        first = agent(old, "old-agent.log")

        def node_up() -> bool:
            hv = httpx.get(f"{c.compute_url}/os-hypervisors/detail", headers=nova).json()["hypervisors"]
            return any(x["hypervisor_hostname"] == "old-node" and x["state"] == "up" for x in hv)

        wait_for(node_up, 40, f"the old agent's node up ({(tmp_path / 'old-agent.log').read_text()[-2000:]})")
        doc = json.loads(cumulo(c, "upgrade", "check", "--json").stdout)
        agents_check = next(x for x in doc["checks"] if x["check"] == "Agent versions")
        assert agents_check["result"] == "Warning", agents_check
        assert "compute agent on old-node reports no version" in agents_check["details"]
        image = httpx.post(f"{c.image_url}/v2/images", headers=h, json={
            "name": unique("old-img"), "disk_format": "raw", "container_format": "bare"}).json()
        assert httpx.put(f"{c.image_url}/v2/images/{image['id']}/file", content=b"\0" * 4096,
                         headers={**h, "Content-Type": "application/octet-stream"}).status_code == 204
        r = httpx.post(f"{c.compute_url}/servers", headers=nova, json={"server": {
            "name": unique("on-old"), "flavorRef": "10", "imageRef": image["id"], "networks": "none"}})
        assert r.status_code == 202, r.text
        sid = r.json()["server"]["id"]

        def server() -> dict[str, Any]:
            return dict(httpx.get(f"{c.compute_url}/servers/{sid}", headers=nova).json()["server"])

        wait_for(lambda: server()["status"] == "ACTIVE", 40, "the server built by the old agent")
        assert server()["OS-EXT-SRV-ATTR:host"] == "old-node" and first.poll() is None
        # the node's upgrade: the old agent stops, the new code starts on the same node
        stop(first)
        agent(None, "new-agent.log")
        db = state / "cumulo.db"
        wait_for(lambda: rows(db, "SELECT version FROM compute_service WHERE host = 'old-node'") == [(code_version(),)],
                 40, "the upgraded agent reporting this version")
        wait_for(node_up, 20, "the node up on the new code")
        assert server()["status"] == "ACTIVE"  # the server was never lost or stopped
        doc = json.loads(cumulo(c, "upgrade", "check", "--json").stdout)
        assert next(x for x in doc["checks"] if x["check"] == "Agent versions")["result"] == "Success"
    finally:
        for p in agents:
            stop(p)
        stop_cloud(c)
