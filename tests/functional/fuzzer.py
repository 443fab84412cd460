"""A schema-driven fuzzer for every API of a running cloud.

It reads the cloud's OpenAPI documents (``/openapi.json`` on the operator port), and for each
request picks a route and a method, fills the path with real ids of the right kind or with junk,
and sends a body generated from the route's schema and then broken in one way (a wrong type, a
huge number, a long or NUL-holding string, an unknown key, a missing key, deep nesting, not JSON
at all, another Content-Type), or query parameters of the same kinds.  Every answer must be:
not a 5xx, in time, and, when 4xx, in the service's own fault format.

Deterministic for a seed: ``Fuzzer(seed=...)`` replays the same requests against the same cloud.
"""

from __future__ import annotations

import copy
import json
import random
import string
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

JUNK_IDS = ["0", "-1", "x" * 300, "00000000-0000-0000-0000-000000000000", "%00", "..", "a b", "\u00e9\u4e2d",
            "9" * 40, "null", "true", "{}", "%2F..%2F", "1e999", "' OR 1=1 --", "<script>"]
JUNK_VALUES: list[Any] = [None, True, False, 0, -1, 2**63, -(2**63), 1.5, 1e308, "", "x" * 5000, "\u0000",
                          "tab\there", "\ud7ff\ue000", [], [1, 2], {}, {"a": {"b": []}}, "0", "-1",
                          "99999999999999999999", "not-a-uuid", "::1", "10.0.0.1/33", "ACTIVE"]
JUNK_QUERY = ["", "-1", "0", "abc", "9" * 30, "true", "null", "x" * 2000, "%00", "2024-13-45T99:99:99Z",
              "created_at:desc", "id,name", "\u00e9"]
QUERY_KEYS = ["limit", "marker", "sort_key", "sort_dir", "name", "status", "changes-since", "all_tenants",
              "project_id", "tenant_id", "fields", "page_reverse", "visibility", "member_status", "tag",
              "tags", "tags-any", "not-tags", "resources", "required", "member_of", "in_tree", "uuid",
              "ip", "host", "flavor", "image", "deleted", "enabled", "domain_id", "parent_id", "user_id",
              "offset", "detailed", "min_ram", "min_disk", "is_public", "type", "interface", "service_id"]


def fault_shape_ok(service: str, body: Any) -> bool:
    """Is this 4xx body in the service's own fault format?"""
    if not isinstance(body, dict):
        return False
    if service == "identity":
        e = body.get("error")
        return isinstance(e, dict) and isinstance(e.get("code"), int) and isinstance(e.get("message"), str)
    if service in ("compute", "metadata"):
        if len(body) != 1:
            return False
        (inner,) = body.values()
        return isinstance(inner, dict) and isinstance(inner.get("code"), int) and isinstance(inner.get("message"), str)
    if service == "network":
        e = body.get("NeutronError")
        return isinstance(e, dict) and isinstance(e.get("type"), str) and isinstance(e.get("message"), str)
    if service == "image":
        return isinstance(body.get("code"), int) and isinstance(body.get("message"), str)
    if service == "placement":
        errors = body.get("errors")
        return isinstance(errors, list) and bool(errors) and all(
            isinstance(e, dict) and isinstance(e.get("status"), int) for e in errors)
    return True


@dataclass
class Finding:
    service: str
    method: str
    path: str
    status: int
    problem: str
    body: str
    response: str

    def line(self) -> str:
        return (f"{self.service} {self.method} {self.path} -> {self.status}: {self.problem}\n"
                f"    body: {self.body[:300]}\n    answer: {self.response[:300]}")


@dataclass
class Stats:
    sent: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    by_service: dict[str, int] = field(default_factory=dict)
    slowest: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, service: str, status: int, took: float, finding: Finding | None) -> None:
        with self.lock:
            self.sent += 1
            self.by_status[status] = self.by_status.get(status, 0) + 1
            self.by_service[service] = self.by_service.get(service, 0) + 1
            self.slowest = max(self.slowest, took)
            if finding is not None and len(self.findings) < 500:
                self.findings.append(finding)


class Generator:
    """Values from a JSON Schema (the subset our schemas use), valid unless mutated."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def valid(self, schema: Any, depth: int = 0) -> Any:
        r = self.rng
        if not isinstance(schema, dict) or depth > 8:
            return r.choice(["x", 1, True, None])
        for key in ("anyOf", "oneOf"):
            if key in schema:
                merged = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
                return self.valid({**merged, **r.choice(schema[key])}, depth + 1)
        if "enum" in schema:
            return r.choice(schema["enum"])
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = r.choice([k for k in kind if k != "null"] or ["null"])
        if kind is None:
            kind = "object" if "properties" in schema else r.choice(["string", "integer", "boolean"])
        if kind == "object":
            out: dict[str, Any] = {}
            props = schema.get("properties") or {}
            required = set(schema.get("required") or ())
            for name, sub in props.items():
                if name in required or r.random() < 0.5:
                    out[name] = self.valid(sub, depth + 1)
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict) and r.random() < 0.5:
                out[self.word()] = self.valid(extra, depth + 1)
            return out
        if kind == "array":
            count = min(schema.get("maxItems", 3), r.randint(schema.get("minItems", 0), 3))
            return [self.valid(schema.get("items", {}), depth + 1) for _ in range(max(count, 0))]
        if kind == "string":
            if schema.get("format") == "ipv4" or "ipv4" in json.dumps(schema):
                return r.choice(["10.0.0.5", "192.168.1.1"])
            low, high = schema.get("minLength", 0), min(schema.get("maxLength", 12), 12)
            if "pattern" in schema and "0-9" in schema["pattern"] and "a-z" not in schema["pattern"]:
                return str(r.randint(1, 5))
            return self.word(max(low, r.randint(low, max(low, high))))
        if kind == "integer":
            low = schema.get("minimum", 0)
            return r.randint(low, min(schema.get("maximum", low + 10), low + 10))
        if kind == "number":
            return round(r.uniform(0.1, 4.0), 2)
        if kind == "boolean":
            return r.random() < 0.5
        return None

    def word(self, n: int = 8) -> str:
        return "fz" + "".join(self.rng.choice(string.ascii_lowercase) for _ in range(max(n - 2, 1)))

    def junk(self) -> Any:
        return copy.deepcopy(self.rng.choice(JUNK_VALUES))

    def mutate(self, value: Any) -> Any:
        """One thing wrong somewhere in ``value`` (or in its shape as a whole)."""
        r = self.rng
        roll = r.random()
        if roll < 0.05:
            return self.junk()
        if roll < 0.08:
            deep: Any = 1
            for _ in range(r.choice([33, 60, 200])):
                deep = {"a": deep} if r.random() < 0.5 else [deep]
            return deep
        paths = list(self._paths(value))
        if not paths:
            return self.junk()
        path = r.choice(paths)
        container, key = self._locate(value, path)
        if container is None:
            return self.junk()
        action = r.random()
        if action < 0.55:
            container[key] = self.junk()
        elif action < 0.7 and isinstance(container, dict):
            container[self.rng.choice(["surprise", "id", "status", "x" * 300, "\u0000k", "project_id",
                                       "tenant_id", "admin", "created_at"])] = self.junk()
        elif action < 0.85 and isinstance(container, dict):
            container.pop(key, None)
        else:
            container[key] = [container[key]] * r.choice([2, 500, 3000])
        return value

    def _paths(self, value: Any, prefix: tuple = ()) -> Iterator[tuple]:
        if isinstance(value, dict):
            for k, v in value.items():
                yield (*prefix, k)
                yield from self._paths(v, (*prefix, k))
        elif isinstance(value, list):
            for i, v in enumerate(value[:5]):
                yield (*prefix, i)
                yield from self._paths(v, (*prefix, i))

    @staticmethod
    def _locate(value: Any, path: tuple) -> tuple[Any, Any]:
        node = value
        for step in path[:-1]:
            node = node[step]
        return node, path[-1]


@dataclass
class Route:
    service: str
    base: str
    path: str
    method: str
    schema: Any


class Fuzzer:
    def __init__(self, docs: dict[str, Any], tokens: dict[str, str], ids: dict[str, list[str]],
                 seed: int, timeout: float = 10.0, skip: Callable[[Route], bool] | None = None) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.gen = Generator(self.rng)
        self.tokens, self.ids, self.timeout = tokens, ids, timeout
        self.routes: list[Route] = []
        for service, doc in docs.items():
            base = doc["servers"][0]["url"].rstrip("/")
            for path, item in doc["paths"].items():
                for method, op in item.items():
                    schema = (op.get("requestBody") or {}).get("content", {}).get("application/json", {}).get("schema")
                    route = Route(service, base, path, method.upper(), schema)
                    if skip is None or not skip(route):
                        self.routes.append(route)

    def fill(self, path: str) -> str:
        r = self.rng

        def value(name: str) -> str:
            known = self.ids.get(name) or []
            if known and r.random() < 0.6:
                return r.choice(known)
            return r.choice(JUNK_IDS)

        out = path
        while "{" in out:
            start = out.index("{")
            end = out.index("}", start)
            out = out[:start] + _quote(value(out[start + 1:end])) + out[end + 1:]
        return out

    def request(self) -> dict[str, Any]:
        """The next request, as keyword arguments for httpx plus the route it exercises."""
        r = self.rng
        route = r.choice(self.routes)
        # the member is the hostile tenant; the admin reads, and creates (POST), to reach deeper code
        # without unmaking the cloud under the run (no admin PUT, PATCH or DELETE)
        persona = "admin" if route.method in ("GET", "POST") and r.random() < 0.3 else "member"
        headers = {"X-Auth-Token": self.tokens[persona]}
        if route.service == "compute":
            headers["OpenStack-API-Version"] = f"compute 2.{r.choice([1, 37, 47, 74, 90, 96])}"
        if route.service == "placement":
            headers["OpenStack-API-Version"] = f"placement 1.{r.choice([0, 10, 20, 39])}"
        kw: dict[str, Any] = {"method": route.method, "url": route.base + self.fill(route.path), "headers": headers}
        if route.method in ("GET", "DELETE"):
            if r.random() < 0.8:
                kw["params"] = {r.choice(QUERY_KEYS): r.choice(JUNK_QUERY) for _ in range(r.randint(1, 3))}
        else:
            kw.update(self.body(route))
        return {"route": route, "kwargs": kw}

    def body(self, route: Route) -> dict[str, Any]:
        r = self.rng
        roll = r.random()
        if roll < 0.04:
            return {"content": r.choice([b"", b"{", b"\xff\xfe", b"[" * 50000, b"null", b"1", b'"s"',
                                         b'{"a": 1, "a": 2}'])}
        if roll < 0.07:
            return {"content": b'{"x": 1}', "headers_extra": {"Content-Type": r.choice(
                ["text/plain", "application/xml", "multipart/form-data", "application/x-www-form-urlencoded"])}}
        value = self.gen.valid(route.schema) if route.schema else {self.gen.word(): self.gen.junk()}
        if r.random() < 0.93:
            value = self.gen.mutate(value)
        return {"content": json.dumps(value, allow_nan=True).encode(),
                "headers_extra": {"Content-Type": "application/json"}}

    def run(self, count: int, workers: int = 4, deadline: float | None = None) -> Stats:
        stats = Stats()
        plans = [self.request() for _ in range(count)]
        stop_at = time.monotonic() + deadline if deadline else None

        def send(client: httpx.Client, plan: dict[str, Any]) -> None:
            if stop_at and time.monotonic() > stop_at:
                return
            route: Route = plan["route"]
            kw = dict(plan["kwargs"])
            extra = kw.pop("headers_extra", None)
            if extra:
                kw["headers"] = {**kw["headers"], **extra}
            started = time.monotonic()
            try:
                resp = client.request(**kw, timeout=self.timeout)
            except httpx.TimeoutException:
                stats.add(route.service, 0, time.monotonic() - started,
                          Finding(route.service, route.method, route.path, 0, "no answer in time",
                                  _text(kw), ""))
                return
            except httpx.HTTPError as exc:
                stats.add(route.service, -1, time.monotonic() - started,
                          Finding(route.service, route.method, route.path, -1, f"connection: {exc}",
                                  _text(kw), ""))
                return
            took = time.monotonic() - started
            finding = None
            if resp.status_code >= 500:
                finding = Finding(route.service, route.method, route.path, resp.status_code, "server error",
                                  _text(kw), resp.text)
            elif 400 <= resp.status_code < 500 and kw["method"] != "HEAD":
                try:
                    shaped = fault_shape_ok(route.service, resp.json())
                except ValueError:
                    shaped = False
                if not shaped:
                    finding = Finding(route.service, route.method, route.path, resp.status_code,
                                      "fault not in the service's format", _text(kw), resp.text)
            stats.add(route.service, resp.status_code, took, finding)

        local = threading.local()

        def client() -> httpx.Client:
            if not hasattr(local, "client"):
                local.client = httpx.Client()
            return local.client  # type: ignore[no-any-return]

        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(lambda p: send(client(), p), plans):
                pass
        return stats


def _quote(value: str) -> str:
    return quote(value, safe="")


def _text(kw: dict[str, Any]) -> str:
    content = kw.get("content")
    body = content.decode("utf-8", "replace") if isinstance(content, bytes) else ""
    params = kw.get("params")
    return f"{kw['url']} params={params} {body}" if params else f"{kw['url']} {body}"
