"""The project's overview: quota use of compute, network and block storage, and a usage report.

Three API calls in parallel (compute's limits, Neutron's quota details, Cinder's quota set with
usage), each allowed to a reader of the project; a service that does not run is left out.  The
usage report is Nova's simple tenant usage for a period, also as a CSV download.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cumulo.dashboard.app import Dashboard, view
from cumulo.dashboard.client import Api, ApiError
from cumulo.dashboard.session import Session

NAV = [("project", "Compute", "Overview", "/project/")]


async def quietly(coro: Any) -> Any:
    """A call whose failure (a service not running, a rule that forbids it) leaves its part out."""
    try:
        return await coro
    except ApiError:
        return None


async def quota_use(api: Api, project_id: str) -> list[dict[str, Any]]:
    """One row per quota: label, used, limit (-1: none)."""
    compute, network, volume = await asyncio.gather(
        quietly(api.get("compute", "/limits")),
        quietly(api.get("network", f"/v2.0/quotas/{project_id}/details")),
        quietly(api.get("block-storage", f"/os-quota-sets/{project_id}", usage="true")))
    rows: list[dict[str, Any]] = []
    if compute:
        a = compute["limits"]["absolute"]
        rows += [{"label": "Instances", "used": a.get("totalInstancesUsed", 0), "limit": a.get("maxTotalInstances")},
                 {"label": "vCPUs", "used": a.get("totalCoresUsed", 0), "limit": a.get("maxTotalCores")},
                 {"label": "RAM (MiB)", "used": a.get("totalRAMUsed", 0), "limit": a.get("maxTotalRAMSize")}]
    if volume:
        q = volume["quota_set"]
        for key, label in (("volumes", "Volumes"), ("gigabytes", "Volume storage (GiB)"),
                           ("snapshots", "Volume snapshots")):
            if isinstance(q.get(key), dict):
                rows.append({"label": label, "used": q[key].get("in_use", 0), "limit": q[key].get("limit")})
    if network:
        q = network["quota"]
        for key, label in (("floatingip", "Floating IPs"), ("security_group", "Security groups"),
                           ("security_group_rule", "Security group rules"), ("network", "Networks"),
                           ("port", "Ports"), ("router", "Routers")):
            if isinstance(q.get(key), dict):
                rows.append({"label": label, "used": q[key].get("used", 0), "limit": q[key].get("limit")})
    for row in rows:
        limit = row["limit"]
        row["percent"] = 0 if limit in (None, -1) else min(100, round(100 * row["used"] / max(1, limit)))
    return rows


def period(request: Request) -> tuple[dt.date, dt.date, str]:
    """The report's period from ``start`` and ``end`` (YYYY-MM-DD): this month so far by default."""
    today = dt.datetime.now(dt.UTC).date()
    error = ""
    try:
        start = dt.date.fromisoformat(request.query_params.get("start") or today.replace(day=1).isoformat())
        end = dt.date.fromisoformat(request.query_params.get("end") or today.isoformat())
    except ValueError:
        start, end, error = today.replace(day=1), today, "Dates are written YYYY-MM-DD."
    if end < start:
        start, end, error = end, start, "The end came before the start: the two were swapped."
    return start, end, error


async def usage(api: Api, project_id: str, start: dt.date, end: dt.date) -> dict[str, Any]:
    data = await api.get("compute", f"/os-simple-tenant-usage/{project_id}", start=f"{start}T00:00:00",
                         end=f"{end}T23:59:59")
    return data.get("tenant_usage") or {}


def attachment(filename: str) -> str:
    """A Content-Disposition naming ``filename``: an ASCII name with no quote, ``;`` or line break
    (a project's name may hold any of them, or letters a latin-1 header cannot carry), and the
    whole name in UTF-8 as ``filename*``."""
    plain = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in filename)[:200]
    return f"attachment; filename=\"{plain or 'download'}\"; filename*=UTF-8''{quote(filename[:200], safe='')}"


def cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text: a tenant's name like ``=HYPERLINK(...)`` (or one
    starting with + - @ or a tab) gets a leading ``'`` instead of becoming a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def routes(d: Dashboard) -> list[Route]:
    async def overview(request: Request, session: Session, api: Api) -> Response:
        start, end, error = period(request)
        rows, report = await asyncio.gather(quota_use(api, session.project_id),
                                            quietly(usage(api, session.project_id, start, end)))
        return d.render(request, "overview.html", title="Overview", quotas=rows, usage=report or {},
                        start=start, end=end, period_error=error)

    async def usage_csv(request: Request, session: Session, api: Api) -> Response:
        start, end, _ = period(request)
        report = await usage(api, session.project_id, start, end)
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["name", "instance_id", "flavor", "vcpus", "memory_mb", "local_gb", "hours", "state",
                    "started_at", "ended_at"])
        for s in report.get("server_usages", []):
            w.writerow([cell(s.get("name")), s.get("instance_id"), s.get("flavor"), s.get("vcpus"), s.get("memory_mb"),
                        s.get("local_gb"), round(s.get("hours", 0), 2), s.get("state"), s.get("started_at"),
                        s.get("ended_at") or ""])
        name = f"usage-{session.project_name or session.project_id}-{start}-{end}.csv"
        return Response(out.getvalue(), media_type="text/csv",
                        headers={"Content-Disposition": attachment(name)})

    return [Route("/project/", view(d, overview), methods=["GET"]),
            Route("/project/usage.csv", view(d, usage_csv), methods=["GET"])]
