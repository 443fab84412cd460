"""``cumulo usage report`` over a day of synthetic usage: rows with set timestamps (a resize kept,
a resize reverted, a stop and start, a delete, volumes, a floating IP, an image) against figures
computed by hand."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cumulo.compute.models import Flavor, InstanceAction, Migration, Server
from cumulo.core.db import Database
from cumulo.identity.models import Domain, Project
from cumulo.image.models import Image
from cumulo.network.models import FloatingIP
from cumulo.ops.usage import report
from cumulo.volume.models import Volume

P, OTHER = "p" * 32, "o" * 32
DAY = dt.datetime(2026, 11, 1)


def at(hour: float, day: dt.datetime = DAY) -> dt.datetime:
    return day + dt.timedelta(hours=hour)


SMALL = {"id": "s", "name": "small", "vcpus": 1, "ram": 512, "disk": 1, "ephemeral": 0}
BIG = {"id": "b", "name": "big", "vcpus": 4, "ram": 4096, "disk": 20, "ephemeral": 5}


def server(sid: str, flavor: dict[str, Any], created: dt.datetime, launched: dt.datetime | None,
           terminated: dt.datetime | None = None, project: str = P) -> Server:
    return Server(id=sid, name=sid, project_id=project, user_id="u", flavor=flavor, flavor_id=flavor["id"],
                  vm_state="deleted" if terminated else "active", created_at=created, launched_at=launched,
                  terminated_at=terminated, deleted_at=terminated, updated_at=created)


@pytest.fixture
async def db(tmp_path: Path) -> Any:
    database = Database(f"sqlite:///{tmp_path / 'cumulo.db'}")
    await database.migrate()
    async with database.session() as s:
        s.add(Domain(id="default", name="Default"))
        await s.flush()
        s.add(Project(id=P, name="billing", domain_id="default"))
        for f in (SMALL, BIG):
            s.add(Flavor(**{k: v for k, v in f.items()}))
        # A: running since the day before; resized to big at 06:00 (confirmed), stopped 12:00-18:00
        s.add(server("a", BIG, at(-30), at(-29)))
        s.add(Migration(uuid="m1", server_id="a", migration_type="resize", status="confirmed", old_flavor_id="s",
                        new_flavor_id="b", created_at=at(6), updated_at=at(6.2)))
        s.add(InstanceAction(server_id="a", action="stop", request_id="r1", start_time=at(12), updated_at=at(12)))
        s.add(InstanceAction(server_id="a", action="start", request_id="r2", start_time=at(18), updated_at=at(18)))
        # B: created 02:00, up 02:30; a resize to big at 10:00 reverted at 11:00; deleted at 20:00
        s.add(server("b", SMALL, at(2), at(2.5), at(20)))
        s.add(Migration(uuid="m2", server_id="b", migration_type="resize", status="reverted", old_flavor_id="s",
                        new_flavor_id="b", created_at=at(10), updated_at=at(11)))
        # a failed resize changes nothing
        s.add(Migration(uuid="m3", server_id="b", migration_type="resize", status="error", old_flavor_id="s",
                        new_flavor_id="b", created_at=at(3), updated_at=at(3)))
        s.add(server("c", BIG, at(-50), at(-49), at(-25)))  # gone before the day
        s.add(server("d", BIG, at(-50), at(-49), project=OTHER))  # another project's
        s.add(Volume(id="v1", size=10, project_id=P, user_id="u", created_at=at(-40), updated_at=at(-40)))
        s.add(Volume(id="v2", size=5, project_id=P, user_id="u", created_at=at(8), updated_at=at(14), deleted=True,
                     deleted_at=at(14)))
        s.add(Volume(id="v3", size=50, project_id=P, user_id="u", created_at=at(-40), updated_at=at(-30),
                     deleted=True, deleted_at=at(-30)))
        s.add(FloatingIP(id="f1", project_id=P, floating_network_id="n", floating_ip_address="203.0.113.5",
                         floating_port_id="fp", created_at=at(12), updated_at=at(12)))
        s.add(Image(id="i1", name="img", owner=P, status="deleted", size=2 << 30, created_at=at(-200),
                    updated_at=at(6), deleted_at=at(6)))
    yield database
    await database.close()


async def test_a_day_of_synthetic_usage_matches_the_hand_computed_figures(db: Database) -> None:
    r = await report(db, P, DAY, at(24))
    lines = {(line.kind, line.id): line for line in r.lines}
    assert set(lines) == {("server", "a"), ("server", "b"), ("volume", "v1"), ("volume", "v2"),
                          ("floating_ip", "f1"), ("image", "i1")}
    a, b = lines["server", "a"], lines["server", "b"]
    # A: 6 h small (1 vCPU, 512 MB, 1 GB) then 18 h big (4, 4096, 20 + 5); powered off 6 h
    assert (a.hours, a.running_hours) == (24, 18)
    assert (a.vcpu_hours, a.ram_mb_hours, a.disk_gb_hours) == (6 + 18 * 4, 6 * 512 + 18 * 4096, 6 + 18 * 25)
    # B: 02:30-10:00 small, 10:00-11:00 big, 11:00-20:00 small again
    assert (b.hours, b.running_hours) == (17.5, 17.5)
    assert b.vcpu_hours == 7.5 + 4 + 9 and b.ram_mb_hours == 7.5 * 512 + 4096 + 9 * 512
    assert b.disk_gb_hours == 7.5 + 25 + 9
    t = r.totals()
    assert t["vcpu_hours"] == 98.5 and t["ram_mb_hours"] == 89344 and t["disk_gb_hours"] == 497.5
    assert t["hours"] == 41.5 and t["running_hours"] == 35.5
    assert t["volume_gb_hours"] == 24 * 10 + 6 * 5
    assert t["floating_ip_hours"] == 12
    assert t["image_gb_hours"] == 6 * 2


async def test_a_period_cuts_each_life_at_its_edges(db: Database) -> None:
    r = await report(db, P, at(9), at(12))  # B is at big from 10 to 11; A is big, on; v2 lives
    t = r.totals()
    assert t["vcpu_hours"] == 3 * 4 + (1 + 4 + 1)
    assert t["volume_gb_hours"] == 3 * 10 + 3 * 5
    assert t["floating_ip_hours"] == 0


async def test_the_other_project_sees_only_its_own(db: Database) -> None:
    t = (await report(db, OTHER, DAY, at(24))).totals()
    assert t["vcpu_hours"] == 24 * 4 and t["volume_gb_hours"] == 0


def test_the_cli_prints_csv_with_a_total_row(db: Database, tmp_path: Path) -> None:
    from cumulo.cli.main import main

    result = CliRunner().invoke(main, ["--state-dir", str(tmp_path), "usage", "report", "--project", "billing",
                                       "--from", "2026-11-01", "--to", "2026-11-02T00:00:00Z", "--csv"])
    assert result.exit_code == 0, result.output
    rows = result.output.strip().splitlines()
    assert rows[0].startswith("project_id,start,end,kind,id,name,hours,running_hours,vcpu_hours")
    total = rows[-1].split(",")
    assert total[3] == "total" and float(total[8]) == 98.5 and float(total[9]) == 89344
    bad = CliRunner().invoke(main, ["--state-dir", str(tmp_path), "usage", "report", "--project", "nope",
                                    "--from", "2026-11-01", "--to", "2026-11-02"])
    assert bad.exit_code != 0 and "no project 'nope'" in bad.output
