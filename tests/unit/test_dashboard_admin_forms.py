"""The admin pages' form helpers: which field a fault names, key=value lines, numbers as typed."""

from __future__ import annotations

import pytest

from cumulo.dashboard.pages.admin import FormError, cut, field_for, key_values, number, seg


def test_a_fault_is_put_beside_the_field_it_names() -> None:
    fields = ["name", "vcpus", "ram", "disk", "ephemeral", "swap"]
    assert field_for("Invalid input for field/attribute flavor.ram. Value: 'x'.", fields, "name") == "ram"
    assert field_for("Flavor with name m1 already exists.", fields, "vcpus") == "name"
    assert field_for("Something else entirely.", fields, "name") == "name"
    # a longer name wins over a shorter one inside it, and a word inside another word does not count
    assert field_for("quota_set.server_group_members must be >= -1", ["compute.server_groups",
                                                                      "compute.server_group_members"], "x") \
        == "compute.server_group_members"
    assert field_for("the program failed", ["ram"], "name") == "name"
    assert field_for("network type vlan is not supported", ["name", "network_type"], "name") == "network_type"


def test_key_value_lines() -> None:
    assert key_values("a=1\n\n# note\n b = two words \nc=") == {"a": "1", "b": "two words", "c": ""}
    with pytest.raises(FormError) as exc:
        key_values("a=1\nno equals")
    assert exc.value.field == "metadata"


def test_numbers_go_as_typed_when_they_are_not_integers() -> None:
    assert number(" 42 ") == 42 and number("-1") == -1
    assert number("lots") == "lots" and number("1.5") == "1.5" and number("") == ""


def test_a_page_cut_from_limit_plus_one() -> None:
    rows = [{"id": str(i)} for i in range(3)]
    assert cut(rows, 2) == (rows[:2], "1")
    assert cut(rows, 3) == (rows, "")


def test_a_path_segment_is_quoted_whole() -> None:
    assert seg("a/b?c") == "a%2Fb%3Fc" and seg("..") == "%2E%2E" and seg("abc-1") == "abc-1"
