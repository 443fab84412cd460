"""After `cumulo restore`, the guests that ran start again on their hosts' first reports: the
marker the restore leaves is taken once per process, and each host is resumed once."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from cumulo.compute.servers.reconcile import RESUME_AFTER_RESTORE, Reconciler
from cumulo.ops.backup import RESUME_AFTER_RESTORE as WRITTEN_BY_RESTORE


def reconciler(state: Path) -> Reconciler:
    r = Reconciler()
    r.compute = SimpleNamespace(cfg=SimpleNamespace(state_path=state))  # type: ignore[attr-defined]
    return r


def test_restore_and_compute_name_the_same_marker() -> None:
    assert WRITTEN_BY_RESTORE == RESUME_AFTER_RESTORE


def test_each_host_resumes_once_and_the_marker_is_taken(tmp_path: Path) -> None:
    (tmp_path / RESUME_AFTER_RESTORE).write_text("restored from b1\n")
    r = reconciler(tmp_path)
    assert r._resume_after_restore("n1") is True
    assert not (tmp_path / RESUME_AFTER_RESTORE).exists()
    assert r._resume_after_restore("n2") is True
    assert r._resume_after_restore("n1") is False  # an agent restarted later: no resume


def test_without_a_restore_nothing_resumes(tmp_path: Path) -> None:
    r = reconciler(tmp_path)
    assert r._resume_after_restore("n1") is False
    (tmp_path / RESUME_AFTER_RESTORE).write_text("")  # appears later: this process looked already
    assert r._resume_after_restore("n1") is False
