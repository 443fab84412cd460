"""What the operator commands that act through the public APIs share (maintenance, backups in a
container, the canary): a password token for one clouds.yaml entry, the endpoint of a service in
its catalog, and an OpenStack fault's message."""

from __future__ import annotations

from typing import Any

import httpx


def fault_text(r: httpx.Response) -> str:
    """The message of an OpenStack fault body (any service's shape: ``{"badRequest": {"message":
    ...}}``, ``{"NeutronError": {...}}``, ``{"message": ...}``), else the body's start."""
    try:
        body = r.json()
    except ValueError:
        return r.text[:300]
    if isinstance(body, dict):
        for value in body.values():
            if isinstance(value, dict) and value.get("message"):
                return str(value["message"])[:300]
        if body.get("message"):
            return str(body["message"])[:300]
    return r.text[:300]


def token_and_endpoint(http: httpx.Client, cloud: dict[str, Any], service_type: str,
                       error: type[Exception]) -> tuple[str, str]:
    """A project-scoped token for the clouds.yaml entry ``cloud`` (password auth) and the URL of
    its catalog's ``service_type`` endpoint (the entry's interface, public by default, in its
    region if it names one); any failure is raised as ``error`` with what went wrong."""
    auth = cloud.get("auth") or {}
    if not auth.get("auth_url"):
        raise error("the cloud's clouds.yaml entry has no auth.auth_url")
    url = auth["auth_url"].rstrip("/")
    url = url if url.endswith("/v3") else url + "/v3"
    scope: dict[str, Any] = {"project": {"name": auth.get("project_name"), "domain": {
        "name": auth.get("project_domain_name") or "Default"}}}
    if auth.get("project_id"):
        scope = {"project": {"id": auth["project_id"]}}
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": auth.get("username"), "password": auth.get("password"),
        "domain": {"name": auth.get("user_domain_name") or "Default"}}}}, "scope": scope}}
    try:
        r = http.post(f"{url}/auth/tokens", json=body)
    except httpx.HTTPError as exc:
        raise error(f"identity at {url}: {type(exc).__name__}: {exc}") from None
    if r.status_code != 201:
        raise error(f"identity at {url} refused the clouds.yaml credentials: {r.status_code} {fault_text(r)}")
    region, interface = cloud.get("region_name"), cloud.get("interface") or "public"
    for entry in r.json()["token"].get("catalog", []):
        if entry.get("type") != service_type:
            continue
        for ep in entry.get("endpoints", []):
            if ep.get("interface") == interface and (not region or ep.get("region") in (region, None)):
                return r.headers["X-Subject-Token"], str(ep["url"])
    raise error(f"the cloud's catalog has no {service_type} endpoint")
