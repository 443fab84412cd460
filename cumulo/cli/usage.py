"""``cumulo usage report``: a project's vCPU-hours, RAM MB-hours, disk, volume, floating-IP and
image GB-hours over a period, from the database (``cumulo.ops.usage`` says how each is counted)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import click

from cumulo.core import config as configmod


def _when(value: str, option: str) -> dt.datetime:
    """A date (its midnight) or a date and time, UTC unless it carries an offset; stored naive UTC."""
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (2026-12-01) or a time (2026-12-01T06:00:00Z)",
                                 param_hint=option) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment


@click.group("usage", short_help="Usage for billing: vCPU-, RAM-, disk-, volume-, floating-IP-hours.")
def usage_group() -> None:
    """A project's usage over a period, as os-simple-tenant-usage counts it but right across resizes."""


@usage_group.command("report", epilog="""Examples:

\b
  cumulo usage report --project demo --from 2026-12-01 --to 2026-12-02
  cumulo usage report --project 3f2a... --from 2026-11-01 --to 2026-12-01 --csv > november.csv
  cumulo usage report --project demo --from 2026-12-01T00:00:00Z --to 2026-12-01T12:00:00Z --json""")
@click.option("--project", "-p", required=True, help="The project's id or name (in the default domain).")
@click.option("--from", "start", required=True, help="The period's start: a date or an ISO time (UTC).")
@click.option("--to", "end", required=True, help="The period's end (not included), same forms.")
@click.option("--csv", "as_csv", is_flag=True, help="One CSV row per resource and a total row.")
@click.option("--json", "as_json", is_flag=True, help="The totals and each resource's figures as JSON.")
@click.pass_context
def report_command(ctx: click.Context, project: str, start: str, end: str, as_csv: bool, as_json: bool) -> None:
    """vCPU-hours, RAM MB-hours, disk GB-hours (the flavor's root and ephemeral disks), server hours
    (and the part powered on), volume GB-hours, floating-IP hours and image GB-hours of PROJECT from
    --from to --to, read from [database] url (the cloud may be running or not)."""
    from sqlalchemy import column, select, table

    from cumulo.core.db import Database
    from cumulo.ops.usage import report

    root = ctx.find_root().obj or {}
    try:
        cfg = configmod.load(root.get("config"), state_dir=root.get("state_dir"))
    except configmod.ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    begin, finish = _when(start, "--from"), _when(end, "--to")
    if finish <= begin:
        raise click.BadParameter("the end must come after the start", param_hint="--to")

    async def go() -> object:
        db = Database(cfg.database_url, pool_size=2)
        try:
            p = table("identity_project", column("id"), column("name"), column("domain_id"))
            async with db.reader() as s:
                found = (await s.execute(select(p.c.id).where(p.c.id == project))).scalar()
                if found is None:
                    found = (await s.execute(select(p.c.id).where(
                        p.c.name == project, p.c.domain_id == cfg.identity.default_domain_id))).scalar()
            if found is None:
                raise click.ClickException(f"no project {project!r} (by id, or by name in the default domain)")
            return await report(db, found, begin, finish)
        finally:
            await db.close()

    result = asyncio.run(go())
    if as_csv:
        click.echo(result.csv(), nl=False)  # type: ignore[attr-defined]
    elif as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))  # type: ignore[attr-defined]
    else:
        click.echo(result.text())  # type: ignore[attr-defined]
