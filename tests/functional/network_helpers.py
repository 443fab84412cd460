"""What the network test modules share: a Neutron API client that checks statuses and fault
bodies, and the personas (with a project manager, who writes QoS and metering by Neutron's
defaults) as such clients."""

from __future__ import annotations

from typing import Any

import httpx

from tests.functional.conftest import Cloud, make_people, make_project_member


class NeutronApi:
    """One token's client of the Network API under ``prefix`` (e.g. ``/metering``): with a
    ``status`` the answer must have it (and a NeutronError body when it is a fault), without one
    it must succeed; the JSON body is returned."""

    def __init__(self, cloud: Cloud, token: str, prefix: str = "") -> None:
        self.url, self.headers = cloud.network_url + prefix, {"X-Auth-Token": token}

    def __call__(self, method: str, path: str, body: Any = None, status: int | None = None) -> Any:
        r = httpx.request(method, self.url + path, json=body, headers=self.headers, timeout=30)
        if status is not None:
            assert r.status_code == status, (method, path, r.status_code, r.text)
            if status >= 400:
                assert "NeutronError" in r.json(), r.text
        else:
            assert r.status_code < 300, (method, path, r.status_code, r.text)
        return r.json() if r.content else None


def network_people(cloud: Cloud, prefix: str, api_prefix: str = "") -> dict[str, Any]:
    """admin; P's manager, member and reader; other (a member of Q), as clients; and the project
    ids under "P" and "Q"."""
    made = make_people(cloud, prefix)
    p = made["member"]
    manager = make_project_member(cloud, prefix, "manager", {"id": p.project_id, "name": p.project_name})
    out: dict[str, Any] = {name: NeutronApi(cloud, x.token, api_prefix) for name, x in made.items()}
    out["manager"] = NeutronApi(cloud, manager.token, api_prefix)
    out["admin"] = NeutronApi(cloud, cloud.token()[0], api_prefix)
    out["P"], out["Q"] = p.project_id, made["other"].project_id
    return out
