"""Plug-in modules are found in JUNCTURE_PLUGINS and entry points, and imported once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from juncture import plugins


def test_configured_reads_the_variable() -> None:
    assert plugins.configured({plugins.PLUGINS_ENV: " a.b , c,, "})[:2] == ["a.b", "c"]
    assert plugins.configured({}) == plugins.configured({plugins.PLUGINS_ENV: ""})


def test_a_module_is_imported_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "juncture_once_plugin.py").write_text("import builtins\nbuiltins.ONCE += 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("builtins.ONCE", 0, raising=False)
    monkeypatch.setenv(plugins.PLUGINS_ENV, "juncture_once_plugin")
    try:
        assert "juncture_once_plugin" in plugins.load_configured()
        assert plugins.load(["juncture_once_plugin", " "]) == []
        import builtins

        assert builtins.ONCE == 1  # type: ignore[attr-defined]
    finally:
        sys.modules.pop("juncture_once_plugin", None)


def test_a_missing_module_is_an_import_error() -> None:
    with pytest.raises(ImportError):
        plugins.load(["juncture_no_such_plugin"])
