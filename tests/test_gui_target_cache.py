"""The window fills its table from the target cache while torch and transformers are still loading;
a checkpoint whose target the cache does not hold opens as soon as they are in."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from speechport.core.conversion import prepare  # noqa: E402
from speechport.gui.window.libraries import LibraryLoader  # noqa: E402

from gui_support import OPEN_TIMEOUT_MS, wait_open  # noqa: E402
from support import checkpoint_path  # noqa: E402


@pytest.fixture
def libraries_held(monkeypatch):
    """torch and transformers never finish loading, until the test calls the returned function."""
    real_load = LibraryLoader.load
    requested = []
    monkeypatch.setattr(LibraryLoader, "load", lambda self: requested.append(self))

    def release():
        monkeypatch.setattr(LibraryLoader, "load", real_load)
        for loader in requested:
            loader.load()

    return release


def test_a_cached_architecture_fills_the_table_before_the_libraries_are_in(make_window, qtbot, tmp_path, monkeypatch,
                                                                            libraries_held):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-home"))
    prepare(checkpoint_path("cs_s64")).hasher.cancel()  # an earlier run built the target
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    wait_open(qtbot, window)
    assert not window.loader.ready()
    assert window.prepared.timings["import"] == 0.0 and window.prepared.plan.ok
    assert window.model.rowCount() == len(window.prepared.plan.rows) > 0


def test_an_unknown_target_opens_once_the_libraries_are_in(make_window, qtbot, tmp_path, monkeypatch, libraries_held):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-home"))  # empty: nothing known
    window = make_window(source=checkpoint_path("cs_s64"), output=tmp_path / "out")
    qtbot.waitUntil(lambda: window.workspace.waiting_for_libraries and not window.workspace.opening.busy(),
                    timeout=OPEN_TIMEOUT_MS)
    assert window.prepared is None and window.busy()  # waiting, not failed: no message to act on
    assert not window.message_bar.isVisible()
    libraries_held()
    wait_open(qtbot, window)
    assert window.prepared.plan.ok and window.loader.ready()
