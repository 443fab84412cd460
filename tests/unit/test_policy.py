"""The oslo.policy-syntax engine: each check kind, precedence, substitutions and overrides."""

from __future__ import annotations

import pytest

from cumulo.core.policy import Enforcer, PolicyNotAuthorized, PolicyNotRegistered, PolicyParseError

CREDS = {"user_id": "u1", "project_id": "p1", "roles": ["Member", "reader"], "system_scope": None,
         "token": {"user": {"domain": {"id": "default"}}}}


def check(rule: str, target: dict | None = None, creds: dict | None = None, **more: str) -> bool:
    return Enforcer({"r": rule, **more}).enforce("r", target or {}, creds or CREDS)


@pytest.mark.parametrize("rule,expected", [
    ("", True), ("@", True), ("!", False), ("role:member", True), ("role:admin", False),
    ("role:admin or role:reader", True), ("role:admin and role:reader", False),
    ("not role:admin", True), ("role:reader and not (role:admin or role:other)", True),
    ("role:admin or role:reader and role:nope", False),  # and binds tighter than or
    ("(role:admin or role:reader) and role:member", True),
    ("user_id:u1", True), ("project_id:p2", False), ("token.user.domain.id:default", True),
    ("system_scope:all", False), ("True:%(flag)s", False),
])
def test_checks_and_precedence(rule: str, expected: bool) -> None:
    assert check(rule) is expected


def test_target_substitutions_with_dotted_paths_and_missing_keys() -> None:
    rule = "user_id:%(target.user.id)s"
    assert check(rule, {"user": {"id": "u1"}})
    assert check(rule, {"target.user.id": "u1"})
    assert not check(rule, {"user": {"id": "u2"}})
    assert not check(rule, {})  # missing -> False, not an error
    assert check("'u1':%(owner)s", {"owner": "u1"}) and not check("'u1':%(owner)s", {"owner": "x"})
    assert check("role:%(role.name)s", {"role": {"name": "READER"}})  # roles match case-insensitively
    assert not check("role:%(role.name)s", {"role": {"name": "admin"}})
    assert check("role:%(role.name)s", {"role": {"name": "reader"}})


def test_rule_references_and_unknown_rules() -> None:
    e = Enforcer({"admin_required": "role:admin", "a": "rule:admin_required or user_id:u1", "b": "rule:missing"})
    assert e.enforce("a", {}, CREDS)
    assert not e.enforce("b", {}, CREDS)
    with pytest.raises(PolicyNotRegistered):
        e.enforce("nope", {}, CREDS)
    with pytest.raises(PolicyNotAuthorized):
        e.authorize("b", {}, CREDS)


def test_list_of_lists_is_or_of_ands() -> None:
    e = Enforcer({"r": [["role:admin"], ["role:reader", "user_id:u1"]]})  # type: ignore[dict-item]
    assert e.enforce("r", {}, CREDS)
    assert not e.enforce("r", {}, {**CREDS, "user_id": "u9"})


@pytest.mark.parametrize("suffix,text", [(".yaml", '"a": "role:admin"\n"new": "@"\n'),
                                         (".json", '{"a": "role:admin", "new": "@"}')])
def test_file_overrides_defaults_and_adds_rules(tmp_path, suffix: str, text: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / f"policy{suffix}"
    path.write_text(text)
    e = Enforcer({"a": "@", "b": "!"}, path)
    assert not e.enforce("a", {}, CREDS) and e.enforce("new", {}, CREDS) and not e.enforce("b", {}, CREDS)
    assert "overridden" in e.rules_as_yaml()


@pytest.mark.parametrize("bad", ["role:admin or", "(role:admin", "role:admin)", "and role:x", "justtext"])
def test_parse_errors_name_the_rule(bad: str) -> None:
    with pytest.raises(PolicyParseError) as exc:
        Enforcer({"broken": bad})
    assert "broken" in str(exc.value)
