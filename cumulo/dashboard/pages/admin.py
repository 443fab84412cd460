"""The admin panel's overview (every project's usage for a period, also as CSV) and what the
admin pages share: paging, project names, and forms that show the API's own fault beside a field.

Every admin route is made with ``view(d, fn, panel="admin")``: the ``dashboard:admin_panel`` rule
is checked before the page asks any API, so a member or a reader gets the 403 page with nothing of
the page in it.  The services then check the admin's token again on every call.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cumulo.dashboard.app import Dashboard, view
from cumulo.dashboard.client import Api, ApiError, Unauthorized
from cumulo.dashboard.pages.overview import cell, period
from cumulo.dashboard.session import Session

NAV = [("admin", "Overview", "Usage", "/admin/")]
PAGE_SIZES = (20, 50, 100, 500)


# -- paging ---------------------------------------------------------------------------------------
def page_size(request: Request) -> int:
    raw = request.query_params.get("limit", "")
    return int(raw) if raw.isdigit() and int(raw) in PAGE_SIZES else PAGE_SIZES[0]


def marker(request: Request) -> str:
    return request.query_params.get("marker", "")[:64]


def cut(items: list[Any], limit: int, key: str = "id") -> tuple[list[Any], str]:
    """A page asked for with ``limit + 1``: the page, and the marker of the next one ("" at the end)."""
    more = len(items) > limit
    items = items[:limit]
    return items, str(items[-1][key]) if more and items else ""


def seg(value: Any) -> str:
    """A value as one segment of an API path (a form's id or a key may hold ``/``, ``?`` or ``..``)."""
    text = str(value)
    return "%2E" * len(text) if text in (".", "..") else quote(text, safe="")


def query_of(request: Request, *names: str) -> dict[str, str]:
    """The list's filters from the query string (at most 255 characters each)."""
    return {n: request.query_params.get(n, "")[:255] for n in names}


# -- calls ----------------------------------------------------------------------------------------
async def quietly(coro: Awaitable[Any]) -> Any:
    """A part of a page whose failure (a service not running) leaves only that part out."""
    try:
        return await coro
    except Unauthorized:
        raise
    except ApiError:
        return None


async def project_names(api: Api) -> dict[str, str]:
    """Project id -> name, one call to identity (shown beside every project's resources)."""
    data = await quietly(api.get("identity", "/projects"))
    return {p["id"]: p["name"] for p in (data or {}).get("projects", [])}


async def gather(*calls: Awaitable[Any]) -> list[Any]:
    return list(await asyncio.gather(*calls))


# -- forms ----------------------------------------------------------------------------------------
@dataclass
class Field:
    name: str
    label: str
    kind: str = "text"  # text, number, password, checkbox, select, textarea, hidden
    options: list[tuple[str, str]] = field(default_factory=list)  # (value, label) of a select
    help: str = ""
    required: bool = False


class FormError(Exception):
    """A form's input refused before any call (two passwords that differ): ``field`` and words."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field_name, message


def form_values(form: Any, fields: Iterable[Field]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields:
        if f.kind == "checkbox":
            out[f.name] = form.get(f.name) in ("on", "1", "true", "yes")
        else:
            out[f.name] = str(form.get(f.name, "")).strip()[:65535 if f.kind == "textarea" else 255]
    return out


def number(value: Any) -> Any:
    """A form's number as an int when it is one, else the text as typed: the API says what is wrong."""
    text = str(value).strip()
    return int(text) if re.fullmatch(r"-?\d{1,18}", text) else text


def field_for(message: str, names: Iterable[str], default: str) -> str:
    """The field a fault's words name (``ram``, ``vcpus``, ``name``, ...), else ``default``."""
    lowered = message.lower()
    for name in sorted(names, key=len, reverse=True):
        short = name.rsplit(".", 1)[-1].lower()
        for words in {short, short.replace("_", " ")}:  # network_type is "network type" in some faults
            if re.search(rf"(?<![a-z_]){re.escape(words)}(?![a-z_])", lowered):
                return name
    return default


async def form_page(d: Dashboard, request: Request, *, title: str, fields: list[Field],
                    submit: Callable[[dict[str, Any]], Awaitable[Response]], initial: dict[str, Any] | None = None,
                    button: str = "Save", back: str = "/admin/", main: str = "name",
                    intro: str = "", template: str = "admin_form.html", **context: Any) -> Response:
    """GET shows the form; POST calls ``submit`` with its values, which redirects on success.  A
    fault of the API (4xx) shows the form again, status 400, with the API's words beside the field
    they name (or beside ``main``)."""
    values = dict(initial or {})
    errors: dict[str, str] = {}
    if request.method == "POST":
        values.update(form_values(await request.form(), fields))
        try:
            return await submit(values)
        except FormError as exc:
            errors[exc.field] = exc.message
        except Unauthorized:
            raise
        except ApiError as exc:
            if exc.status >= 500:
                raise
            errors[field_for(exc.message, [f.name for f in fields if f.kind != "hidden"], main)] = exc.message
    return d.render(request, template, 400 if errors else 200, title=title, fields=fields, values=values,
                    errors=errors, submit_label=button, back=back, intro=intro, action=request.url.path, **context)


async def act(d: Dashboard, back: str, call: Awaitable[Any], words: str) -> Response:
    """A button's action (delete, enable, ...): back to the list with words, the API's when it refused."""
    try:
        await call
    except Unauthorized:
        raise
    except ApiError as exc:
        if exc.status >= 500:
            raise
        return d.redirect(back, ("error", exc.message))
    return d.redirect(back, ("info", words))


async def form_of(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: str(v).strip()[:65535] for k, v in form.items() if k != "csrf_token"}


def key_values(text: str) -> dict[str, str]:
    """``key=value`` lines (metadata, extra specs) as a dict; blank lines and ``#`` comments skipped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise FormError("metadata", f"Each line is key=value: {line[:60]!r} is not.")
        out[key.strip()] = value.strip()
    return out


# -- the overview: usage of every project ---------------------------------------------------------
async def usages(api: Api, request: Request) -> tuple[Any, Any, str, list[dict[str, Any]]]:
    start, end, error = period(request)
    data, names = await gather(
        api.get("compute", "/os-simple-tenant-usage", start=f"{start}T00:00:00", end=f"{end}T23:59:59",
                detailed="1"),
        project_names(api))
    rows = data.get("tenant_usages", [])
    for row in rows:
        row["project_name"] = names.get(row.get("tenant_id", ""), "")
    rows.sort(key=lambda r: (-float(r.get("total_vcpus_usage") or 0), r["project_name"]))
    return start, end, error, rows


def routes(d: Dashboard) -> list[Route]:
    async def overview(request: Request, session: Session, api: Api) -> Response:
        start, end, error, rows = await usages(api, request)
        return d.render(request, "admin_usage.html", title="Usage of every project", usages=rows, start=start,
                        end=end, period_error=error)

    async def usage_csv(request: Request, session: Session, api: Api) -> Response:
        start, end, _, rows = await usages(api, request)
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["project_id", "project_name", "servers", "vcpu_hours", "ram_mb_hours", "disk_gb_hours",
                    "total_hours"])
        for row in rows:
            w.writerow([row.get("tenant_id"), cell(row["project_name"]), len(row.get("server_usages") or []),
                        round(row.get("total_vcpus_usage") or 0, 2), round(row.get("total_memory_mb_usage") or 0, 2),
                        round(row.get("total_local_gb_usage") or 0, 2), round(row.get("total_hours") or 0, 2)])
        return Response(out.getvalue(), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="usage-all-{start}-{end}.csv"'})

    return [Route("/admin/", view(d, overview, panel="admin"), methods=["GET"]),
            Route("/admin/usage.csv", view(d, usage_csv, panel="admin"), methods=["GET"])]
