"""/v3/domains/{id}/config: per-domain identity settings (Keystone's domain-specific config).

Only the ``identity`` and ``ldap`` groups, and the options listed below, may be set; anything else
is refused with 403 as Keystone does.  Cumulo stores and serves the settings; an LDAP identity
back end that reads them is not implemented yet.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.http.app import JSON, Router, json_body, no_content
from cumulo.core.http.faults import Forbidden, NotFound, ValidationError
from cumulo.identity import models as m
from cumulo.identity.api.common import IdentityAPI

DEFAULTS: dict[str, dict[str, Any]] = {
    "identity": {"driver": "sql", "list_limit": None},
    "ldap": {"url": "ldap://localhost", "user": None, "password": None, "suffix": "cn=example,cn=com",
             "query_scope": "one", "page_size": 0, "chase_referrals": None, "alias_dereferencing": "default",
             "user_tree_dn": None, "user_filter": None, "user_objectclass": "inetOrgPerson",
             "user_id_attribute": "cn", "user_name_attribute": "sn", "user_mail_attribute": "mail",
             "user_description_attribute": "description", "user_pass_attribute": "userPassword",
             "user_enabled_attribute": "enabled", "user_enabled_mask": 0, "user_enabled_default": "True",
             "user_enabled_invert": False, "group_tree_dn": None, "group_filter": None,
             "group_objectclass": "groupOfNames", "group_id_attribute": "cn", "group_name_attribute": "ou",
             "group_member_attribute": "member", "group_desc_attribute": "description",
             "use_tls": False, "tls_cacertfile": None, "tls_req_cert": "demand"},
}
SENSITIVE = {("ldap", "password")}


def check(config: Any, group: str | None = None, option: str | None = None) -> dict[str, Any]:
    """Validate a {"group": {"option": value}} document (or a narrower one) and return it."""
    if not isinstance(config, dict) or not config:
        raise ValidationError("config must be a non-empty object.")
    for g, options in config.items():
        if g not in DEFAULTS:
            raise Forbidden(f"Invalid domain specific configuration: group {g!r} is not supported "
                            f"(supported: {', '.join(DEFAULTS)}).")
        if group is not None and g != group:
            raise ValidationError(f"The body names group {g!r} but the URL names {group!r}.")
        if not isinstance(options, dict) or not options:
            raise ValidationError(f"The group {g!r} must be a non-empty object of options.")
        for o in options:
            if o not in DEFAULTS[g]:
                raise Forbidden(f"Invalid domain specific configuration: option {o!r} is not supported in "
                                f"group {g!r}.")
            if option is not None and o != option:
                raise ValidationError(f"The body names option {o!r} but the URL names {option!r}.")
    return config


def visible(config: dict[str, Any]) -> dict[str, Any]:
    return {g: {o: v for o, v in opts.items() if (g, o) not in SENSITIVE} for g, opts in config.items()}


def router(api: IdentityAPI) -> Router:
    r = Router()
    svc = api.svc
    base = "/v3/domains/{domain_id}/config"

    async def stored(request: Request) -> tuple[m.Domain, dict[str, Any]]:
        api.authorize(request, "identity:domain_config")
        domain = await svc.get(m.Domain, request.path_params["domain_id"])
        if not domain.config:
            raise NotFound(f"Could not find domain config for domain {domain.id}.")
        return domain, dict(domain.config)

    async def body(request: Request) -> Any:
        data = await json_body(request)
        if not isinstance(data, dict) or "config" not in data:
            raise ValidationError("Expecting to find config in the request body.")
        return data["config"]

    @r.put(base)
    async def create(request: Request) -> Response:
        api.authorize(request, "identity:domain_config")
        domain = await svc.get(m.Domain, request.path_params["domain_id"])
        config = check(await body(request))
        existed = bool(domain.config)
        await svc.save(m.Domain, domain.id, {"config": config})
        return JSON({"config": visible(config)}, status_code=200 if existed else 201)

    @r.get(base)
    async def show(request: Request) -> Response:
        _, config = await stored(request)
        return JSON({"config": visible(config)})

    @r.patch(base)
    async def update(request: Request) -> Response:
        domain, config = await stored(request)
        for group, options in check(await body(request)).items():
            config[group] = {**config.get(group, {}), **options}
        await svc.save(m.Domain, domain.id, {"config": config})
        return JSON({"config": visible(config)})

    @r.delete(base)
    async def delete(request: Request) -> Response:
        domain, _ = await stored(request)
        await svc.save(m.Domain, domain.id, {"config": None})
        return no_content()

    @r.route(base + "/{group}", ["GET", "PATCH", "DELETE"])
    async def group_config(request: Request) -> Response:
        domain, config = await stored(request)
        group = request.path_params["group"]
        if request.method == "PATCH":
            update = check(await body(request), group=group)
            config[group] = {**config.get(group, {}), **update[group]}
            await svc.save(m.Domain, domain.id, {"config": config})
            return JSON({"config": visible(config)})
        if group not in config:
            raise NotFound(f"Could not find group {group} in the config of domain {domain.id}.")
        if request.method == "DELETE":
            config.pop(group)
            await svc.save(m.Domain, domain.id, {"config": config or None})
            return no_content()
        return JSON({"config": visible({group: config[group]})})

    @r.route(base + "/{group}/{option}", ["GET", "PATCH", "DELETE"])
    async def option_config(request: Request) -> Response:
        domain, config = await stored(request)
        group, option = request.path_params["group"], request.path_params["option"]
        if request.method == "PATCH":
            update = await body(request)
            check({group: update}, group=group, option=option)
            config[group] = {**config.get(group, {}), **update}
            await svc.save(m.Domain, domain.id, {"config": config})
            return JSON({"config": visible(config)})
        if option not in config.get(group, {}) or (group, option) in SENSITIVE:
            raise NotFound(f"Could not find option {option} in group {group} of domain {domain.id}.")
        if request.method == "DELETE":
            config[group].pop(option)
            if not config[group]:
                config.pop(group)
            await svc.save(m.Domain, domain.id, {"config": config or None})
            return no_content()
        return JSON({"config": {option: config[group][option]}})

    @r.get("/v3/domains/config/default")
    async def defaults(request: Request) -> Response:
        api.authorize(request, "identity:get_domain_config_default")
        return JSON({"config": visible(DEFAULTS)})

    @r.get("/v3/domains/config/{group}/default")
    async def group_default(request: Request) -> Response:
        api.authorize(request, "identity:get_domain_config_default")
        group = request.path_params["group"]
        if group not in DEFAULTS:
            raise Forbidden(f"Invalid domain specific configuration: group {group!r} is not supported.")
        return JSON({"config": visible({group: DEFAULTS[group]})})

    @r.get("/v3/domains/config/{group}/{option}/default")
    async def option_default(request: Request) -> Response:
        api.authorize(request, "identity:get_domain_config_default")
        group, option = request.path_params["group"], request.path_params["option"]
        if option not in DEFAULTS.get(group, {}) or (group, option) in SENSITIVE:
            raise Forbidden(f"Invalid domain specific configuration: {group}.{option} is not supported.")
        return JSON({"config": {option: DEFAULTS[group][option]}})

    return r
