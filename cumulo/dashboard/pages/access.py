"""Key pairs and API access: the signed-in user's SSH key pairs (compute), a clouds.yaml and an
openrc for this user and project, and the user's application credentials (identity).

A generated key pair's private key exists only in the answer to its creation: the dashboard
passes it to the browser as a file download and keeps nothing; an application credential's
secret is shown once, on the page that answers its creation.  The clouds.yaml and openrc hold no
password: the openrc asks for it when sourced, the clouds.yaml leaves it to the CLI's prompt
(or to a secure.yaml next to it).  The identity URL in them is the catalog's.
"""

from __future__ import annotations

import shlex
from typing import Any
from urllib.parse import quote

import yaml
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cumulo.dashboard.app import Dashboard, view
from cumulo.dashboard.client import Api, ApiError
from cumulo.dashboard.pages.forms import account, beside, fields, form_refusal, one_page, paging
from cumulo.dashboard.session import Session

NAV = [("project", "Access", "Key pairs", "/project/access/keypairs"),
       ("project", "Access", "API access", "/project/access/api")]
KEY_TYPES = ("ssh", "x509")


def safe_name(value: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in value)[:100] or "cloud"


async def scope(api: Api, session: Session) -> dict[str, str]:
    """What clouds.yaml and openrc name: the catalog's identity URL, user, project and their domains."""
    auth_url = await api.catalog.url("identity", api.token)
    projects = (await api.get("identity", "/auth/projects")).get("projects", [])
    project = next((p for p in projects if p.get("id") == session.project_id), {})
    return {"auth_url": auth_url, "username": session.user_name, "user_domain_id": session.domain_id,
            "project_id": session.project_id, "project_name": session.project_name,
            "project_domain_id": project.get("domain_id", session.domain_id), "region": api.catalog.region}


def clouds_yaml(s: dict[str, str], name: str) -> str:
    cloud = {"auth": {"auth_url": s["auth_url"], "username": s["username"], "user_domain_id": s["user_domain_id"],
                      "project_id": s["project_id"], "project_name": s["project_name"],
                      "project_domain_id": s["project_domain_id"]},
             "region_name": s["region"], "interface": "public", "identity_api_version": 3}
    head = ("# clouds.yaml for Cumulo, made by the dashboard. It holds no password: the openstack CLI asks for it,\n"
            f"# or put it in a secure.yaml beside this file (clouds: {{{name}: {{auth: {{password: ...}}}}}}).\n"
            f"# Use it with: export OS_CLOUD={name}\n")
    return head + yaml.safe_dump({"clouds": {name: cloud}}, sort_keys=False)


def openrc(s: dict[str, str]) -> str:
    q = shlex.quote
    return "\n".join([
        "#!/usr/bin/env bash",
        f"# Cumulo openrc for user {s['username']} in project {s['project_name']}: source it (. ./openrc).",
        "# It asks for the password instead of holding it.",
        f"export OS_AUTH_URL={q(s['auth_url'])}",
        "export OS_IDENTITY_API_VERSION=3",
        "export OS_INTERFACE=public",
        f"export OS_REGION_NAME={q(s['region'])}",
        f"export OS_USERNAME={q(s['username'])}",
        f"export OS_USER_DOMAIN_ID={q(s['user_domain_id'])}",
        f"export OS_PROJECT_ID={q(s['project_id'])}",
        f"export OS_PROJECT_NAME={q(s['project_name'])}",
        f"export OS_PROJECT_DOMAIN_ID={q(s['project_domain_id'])}",
        "unset OS_TENANT_ID OS_TENANT_NAME OS_CLOUD",
        'printf "Password for %s in project %s: " "$OS_USERNAME" "$OS_PROJECT_NAME"',
        "read -sr OS_PASSWORD_INPUT",
        "echo",
        'export OS_PASSWORD="$OS_PASSWORD_INPUT"',
        "unset OS_PASSWORD_INPUT",
        ""])


def routes(d: Dashboard) -> list[Route]:
    # key pairs
    async def keypairs_page(request: Request, session: Session, api: Api, form: dict[str, str] | None = None,
                            errors: dict[str, str] | None = None, status: int = 200) -> Response:
        params = paging(request)
        data = await api.get("compute", "/os-keypairs", limit=params["limit"] + 1, marker=params["marker"])
        pairs, next_marker = one_page([k["keypair"] for k in data.get("keypairs", [])], params["limit"], "name")
        return d.render(request, "access_keypairs.html", status, title="Key pairs", keypairs=pairs, params=params,
                        next_marker=next_marker, form=form or {"key_type": "ssh"}, errors=errors or {},
                        key_types=KEY_TYPES)

    async def keypairs(request: Request, session: Session, api: Api) -> Response:
        return await keypairs_page(request, session, api)

    async def keypair_create(request: Request, session: Session, api: Api) -> Response:
        """Generate (the answer is the private key, as a file) or import (a public key given)."""
        form = await fields(request, "name", "key_type")
        public_key = (await fields(request, "public_key", limit=16384))["public_key"]
        body: dict[str, Any] = {"name": form["name"], "type": form["key_type"] if form["key_type"] in KEY_TYPES
                                else "ssh"}
        if public_key:
            body["public_key"] = public_key
        try:
            kp = (await api.post("compute", "/os-keypairs", {"keypair": body})).data["keypair"]
        except ApiError as exc:
            if not form_refusal(exc):
                raise
            # Nova's words are about the pair's name (taken, invalid) or else about the key given
            about_name = any(w in exc.message.lower() for w in ("name", "exists"))
            where = "public_key" if public_key and not about_name else "name"
            return await keypairs_page(request, session, api, {**form, "public_key": public_key},
                                       {where: exc.message}, 400)
        if kp.get("private_key"):
            return Response(kp["private_key"], media_type="application/x-pem-file", headers={
                "Content-Disposition": f'attachment; filename="{safe_name(kp["name"])}.pem"',
                "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
        return d.redirect("/project/access/keypairs", ("info", f"Imported key pair {kp['name']}."))

    async def keypair_show(request: Request, session: Session, api: Api) -> Response:
        kp = (await api.get("compute", f"/os-keypairs/{quote(request.path_params['name'], safe='')}"))["keypair"]
        return d.render(request, "access_keypair.html", title=f"Key pair {kp['name']}", keypair=kp)

    async def keypair_delete(request: Request, session: Session, api: Api) -> Response:
        name = request.path_params["name"]
        await api.delete("compute", f"/os-keypairs/{quote(name, safe='')}")
        return d.redirect("/project/access/keypairs", ("info", f"Deleted key pair {name}."))

    # API access
    async def api_page(request: Request, session: Session, api: Api, form: dict[str, str] | None = None,
                       errors: dict[str, str] | None = None, status: int = 200) -> Response:
        creds = await api.get("identity", f"/users/{session.user_id}/application_credentials")
        mine = account(api, session).catalog
        await mine.url("identity", api.token)  # the catalog is fresh
        endpoints = [(service, await mine.url(service, api.token)) for service in sorted(d.catalog.urls)]
        return d.render(request, "access_api.html", status, title="API access", endpoints=endpoints,
                        credentials=creds.get("application_credentials", []), form=form or {}, errors=errors or {})

    async def api_access(request: Request, session: Session, api: Api) -> Response:
        return await api_page(request, session, api)

    async def download(request: Request, session: Session, api: Api) -> Response:
        what = request.path_params["what"]
        if what not in ("clouds.yaml", "openrc"):
            return Response("No such file.", status_code=404)
        s = await scope(api, session)
        name = safe_name(f"cumulo-{session.project_name or session.project_id}")
        if what == "clouds.yaml":
            text, media, filename = clouds_yaml(s, name), "application/x-yaml", "clouds.yaml"
        else:
            text, media, filename = openrc(s), "text/plain", f"{safe_name(session.project_name)}-openrc.sh"
        return Response(text, media_type=media, headers={
            "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})

    async def credential_create(request: Request, session: Session, api: Api) -> Response:
        form = await fields(request, "name", "description", "expires_at", "unrestricted")
        body: dict[str, Any] = {"name": form["name"], "description": form["description"] or None,
                                "unrestricted": form["unrestricted"] == "on"}
        if form["expires_at"]:
            body["expires_at"] = form["expires_at"]
        try:
            cred = (await api.post("identity", f"/users/{session.user_id}/application_credentials",
                                   {"application_credential": body})).data["application_credential"]
        except ApiError as exc:
            if not form_refusal(exc):
                raise
            return await api_page(request, session, api, form, beside(exc.message, ("expires_at", "name"), {
                "expires_at": ("expire", "date", "time")}), 400)
        auth_url = await api.catalog.url("identity", api.token)
        snippet = yaml.safe_dump({"clouds": {safe_name(cred["name"]): {
            "auth_type": "v3applicationcredential", "auth": {
                "auth_url": auth_url, "application_credential_id": cred["id"],
                "application_credential_secret": cred["secret"]},
            "region_name": api.catalog.region, "interface": "public", "identity_api_version": 3}}}, sort_keys=False)
        return d.render(request, "access_credential.html", 201, title="Application credential created",
                        credential=cred, snippet=snippet)

    async def credential_delete(request: Request, session: Session, api: Api) -> Response:
        cred_id = request.path_params["credential_id"]
        await api.delete("identity", f"/users/{session.user_id}/application_credentials/{cred_id}")
        return d.redirect("/project/access/api", ("info", "Deleted the application credential."))

    return [
        Route("/project/access/keypairs", view(d, keypairs), methods=["GET"]),
        Route("/project/access/keypairs/create", view(d, keypair_create), methods=["POST"]),
        Route("/project/access/keypairs/{name}", view(d, keypair_show), methods=["GET"]),
        Route("/project/access/keypairs/{name}/delete", view(d, keypair_delete), methods=["POST"]),
        Route("/project/access/api", view(d, api_access), methods=["GET"]),
        Route("/project/access/api/{what:str}", view(d, download), methods=["GET"]),
        Route("/project/access/credentials/create", view(d, credential_create), methods=["POST"]),
        Route("/project/access/credentials/{credential_id}/delete", view(d, credential_delete), methods=["POST"]),
    ]
