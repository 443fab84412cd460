"""Policy: who may call what, in oslo.policy's rule language, with operator overrides.

Each API action has a named rule (``identity:list_users``).  A rule is an expression of checks:

* ``@`` or an empty string — always allowed; ``!`` — never allowed;
* ``role:admin`` — the caller holds the role (case-insensitive);
* ``rule:admin_required`` — another named rule;
* ``system_scope:all`` — the caller's token is system-scoped;
* ``KEY:VALUE`` — a credential (``user_id``, ``project_id``, ``domain_id``, dotted paths such as
  ``token.user.domain.id``) equals a literal or ``%(target.path)s``, a value of the object acted on;
  ``'literal':%(target.path)s`` compares a literal with the target; a missing key is False;
* ``not``, ``and``, ``or`` and parentheses, with the usual precedence.

Operators override rules with a YAML or JSON file (``[policy] file``) mapping names to rule
strings; the file is re-read when it changes.  ``cumulo policy show`` prints the effective rules.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

Check = Callable[[Mapping[str, Any], Mapping[str, Any], "Enforcer"], bool]


class PolicyError(Exception):
    pass


class PolicyNotAuthorized(PolicyError):
    def __init__(self, rule: str) -> None:
        super().__init__(f"Policy doesn't allow {rule} to be performed.")
        self.rule = rule


class PolicyNotRegistered(PolicyError):
    def __init__(self, rule: str) -> None:
        super().__init__(f"Policy {rule} has not been registered")
        self.rule = rule


class PolicyParseError(PolicyError):
    pass


_TOKEN = re.compile(r"""\s*(\(|\)|(?:'[^']*'|"[^"]*"|%\([^)]*\)s|[^\s()'"%]|%)+)""")
_SUBST = re.compile(r"^%\((.+)\)s$")
_MISSING = object()


def _lookup(data: Mapping[str, Any], path: str) -> Any:
    """A value by dotted path; ``target.x`` also finds ``x`` in a target dict given unwrapped."""
    if path in data:
        return data[path]
    found = _walk(data, path)
    if found is _MISSING and path.startswith("target."):
        found = _walk(data, path[7:])
    return found


def _walk(data: Mapping[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return _MISSING
    return node


def _always(_t: Mapping[str, Any], _c: Mapping[str, Any], _e: Enforcer) -> bool:
    return True


def _never(_t: Mapping[str, Any], _c: Mapping[str, Any], _e: Enforcer) -> bool:
    return False


def _leaf(text: str, rule_name: str) -> Check:
    if text in ("@", "True", "true"):
        return _always
    if text in ("!", "False", "false"):
        return _never
    if ":" not in text:
        raise PolicyParseError(f"rule {rule_name!r}: cannot understand {text!r} (expected KIND:VALUE)")
    kind, value = text.split(":", 1)
    if kind == "role":
        wanted = value.lower()
        if _SUBST.match(value):
            path = _SUBST.match(value).group(1)  # type: ignore[union-attr]

            def role_subst(t: Mapping[str, Any], c: Mapping[str, Any], _e: Enforcer) -> bool:
                v = _lookup(t, path)
                return v is not _MISSING and str(v).lower() in {r.lower() for r in c.get("roles") or ()}
            return role_subst

        def role(_t: Mapping[str, Any], c: Mapping[str, Any], _e: Enforcer) -> bool:
            return any(r.lower() == wanted for r in c.get("roles") or ())
        return role
    if kind == "rule":
        def ref(t: Mapping[str, Any], c: Mapping[str, Any], e: Enforcer) -> bool:
            check = e.compiled(value)
            return check is not None and check(t, c, e)
        return ref
    if kind == "http":
        raise PolicyParseError(f"rule {rule_name!r}: http: checks are not supported")
    if kind[:1] in ("'", '"'):
        literal = kind[1:-1]
        m = _SUBST.match(value)
        if not m:
            raise PolicyParseError(f"rule {rule_name!r}: {text!r} needs a %(...)s target on the right")
        path = m.group(1)

        def literal_check(t: Mapping[str, Any], _c: Mapping[str, Any], _e: Enforcer) -> bool:
            v = _lookup(t, path)
            return v is not _MISSING and str(v) == literal
        return literal_check
    if kind in ("True", "False"):
        m = _SUBST.match(value)
        literal_bool = kind

        def bool_check(t: Mapping[str, Any], _c: Mapping[str, Any], _e: Enforcer) -> bool:
            v = _lookup(t, m.group(1)) if m else value
            return v is not _MISSING and str(v) == literal_bool
        return bool_check
    m = _SUBST.match(value)
    if m:
        target_path = m.group(1)

        def generic_target(t: Mapping[str, Any], c: Mapping[str, Any], _e: Enforcer) -> bool:
            want = _lookup(t, target_path)
            have = _lookup(c, kind)
            if want is _MISSING or have is _MISSING or have is None or want is None:
                return False
            if isinstance(have, (list, tuple, set)):
                return str(want) in {str(h) for h in have}
            return str(have) == str(want)
        return generic_target

    def generic_literal(_t: Mapping[str, Any], c: Mapping[str, Any], _e: Enforcer) -> bool:
        have = _lookup(c, kind)
        if have is _MISSING or have is None:
            return False
        if isinstance(have, (list, tuple, set)):
            return value in {str(h) for h in have}
        if isinstance(have, bool):
            return str(have) == value or str(have).lower() == value.lower()
        return str(have) == value
    return generic_literal


class _Parser:
    def __init__(self, text: str, rule_name: str) -> None:
        self.tokens = [t for t in _TOKEN.findall(text)]
        self.pos = 0
        self.name = rule_name
        self.text = text

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def parse(self) -> Check:
        if not self.tokens:
            return _always
        check = self.or_expr()
        if self.peek() is not None:
            raise PolicyParseError(f"rule {self.name!r}: unexpected {self.peek()!r} in {self.text!r}")
        return check

    def or_expr(self) -> Check:
        parts = [self.and_expr()]
        while self.peek() == "or":
            self.take()
            parts.append(self.and_expr())
        if len(parts) == 1:
            return parts[0]
        return lambda t, c, e: any(p(t, c, e) for p in parts)

    def and_expr(self) -> Check:
        parts = [self.not_expr()]
        while self.peek() == "and":
            self.take()
            parts.append(self.not_expr())
        if len(parts) == 1:
            return parts[0]
        return lambda t, c, e: all(p(t, c, e) for p in parts)

    def not_expr(self) -> Check:
        if self.peek() == "not":
            self.take()
            inner = self.not_expr()
            return lambda t, c, e: not inner(t, c, e)
        return self.atom()

    def atom(self) -> Check:
        tok = self.peek()
        if tok is None:
            raise PolicyParseError(f"rule {self.name!r}: unexpected end of {self.text!r}")
        if tok == "(":
            self.take()
            inner = self.or_expr()
            if self.peek() != ")":
                raise PolicyParseError(f"rule {self.name!r}: missing ')' in {self.text!r}")
            self.take()
            return inner
        if tok in (")", "and", "or"):
            raise PolicyParseError(f"rule {self.name!r}: unexpected {tok!r} in {self.text!r}")
        return _leaf(self.take(), self.name)


def compile_rule(text: Any, rule_name: str = "") -> Check:
    """Compile a rule string (or the legacy list-of-lists form) into a check function."""
    if isinstance(text, list):
        alternatives = [[compile_rule(c, rule_name) for c in (alt if isinstance(alt, list) else [alt])]
                        for alt in text]
        if not alternatives:
            return _always
        return lambda t, c, e: any(all(x(t, c, e) for x in alt) for alt in alternatives)
    if not isinstance(text, str):
        raise PolicyParseError(f"rule {rule_name!r}: expected a string, got {text!r}")
    return _Parser(text, rule_name).parse()


class Enforcer:
    def __init__(self, defaults: Mapping[str, str], policy_file: str | os.PathLike[str] | None = None,
                 descriptions: Mapping[str, str] | None = None) -> None:
        self.defaults = dict(defaults)
        self.descriptions = dict(descriptions or {})
        self.policy_file = Path(policy_file) if policy_file else None
        self._rules: dict[str, Any] = {}
        self._compiled: dict[str, Check] = {}
        self._mtime: float | None = None
        self._checked = 0.0
        self._load()

    def _load(self) -> None:
        rules: dict[str, Any] = dict(self.defaults)
        mtime = None
        if self.policy_file is not None:
            if not self.policy_file.exists():
                raise PolicyError(f"policy file {self.policy_file} does not exist")
            mtime = self.policy_file.stat().st_mtime
            text = self.policy_file.read_text()
            try:
                data = json.loads(text) if self.policy_file.suffix == ".json" else yaml.safe_load(text)
            except (ValueError, yaml.YAMLError) as exc:
                raise PolicyParseError(f"{self.policy_file}: {exc}") from None
            if data is None:
                data = {}
            if not isinstance(data, dict):
                raise PolicyParseError(f"{self.policy_file}: expected a mapping of rule names to rules")
            rules.update(data)
        compiled = {name: compile_rule(rule, name) for name, rule in rules.items()}
        self._rules, self._compiled, self._mtime = rules, compiled, mtime

    def _maybe_reload(self) -> None:
        if self.policy_file is None:
            return
        now = time.monotonic()
        if now - self._checked < 1.0:
            return
        self._checked = now
        try:
            mtime = self.policy_file.stat().st_mtime
        except OSError:
            return
        if mtime != self._mtime:
            self._load()

    def compiled(self, name: str) -> Check | None:
        return self._compiled.get(name)

    def enforce(self, rule: str, target: Mapping[str, Any], creds: Mapping[str, Any]) -> bool:
        self._maybe_reload()
        check = self._compiled.get(rule)
        if check is None:
            raise PolicyNotRegistered(rule)
        return check(target, creds, self)

    def authorize(self, rule: str, target: Mapping[str, Any], creds: Mapping[str, Any]) -> None:
        if not self.enforce(rule, target, creds):
            raise PolicyNotAuthorized(rule)

    def rules_as_yaml(self, only_defaults: bool = False) -> str:
        """The effective rules as YAML, each after its description; ``only_defaults`` leaves out the
        policy file's rules that this enforcer has no default for (another service's)."""
        lines = []
        for name, rule in self._rules.items():
            if only_defaults and name not in self.defaults:
                continue
            if name in self.descriptions:
                lines.append(f"# {self.descriptions[name]}")
            if self.defaults.get(name) != rule:
                lines.append(f"# (overridden; default: {self.defaults.get(name, 'none')!r})")
            lines.append(yaml.safe_dump({name: rule}, default_flow_style=False, width=1000).strip())
        return "\n".join(lines) + "\n"
