"""Presets are found in a source checkout and, from the copy the wheel carries, in an installed package."""

from __future__ import annotations

from pathlib import Path

import pytest

from collapse_lab.utils import resources

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11 (the package itself supports 3.10)

ROOT = Path(__file__).resolve().parents[1]


def test_a_checkout_uses_its_configs_folder():
    assert resources.config_dir("sweeps") == ROOT / "configs" / "sweeps"
    assert {"quick", "ml100k", "criteo"} <= set(resources.config_names("sweeps"))
    assert "Criteo_x4" in resources.config_names("data")


def test_installed_package_uses_its_bundled_copy(tmp_path, monkeypatch):
    package = tmp_path / "site-packages" / "collapse_lab"
    (package / "_configs" / "sweeps").mkdir(parents=True)
    (package / "_configs" / "sweeps" / "mine.yaml").write_text("grid: {n: [1]}\n")
    (tmp_path / "site-packages" / "configs" / "sweeps").mkdir(parents=True)  # another distribution's folder
    (tmp_path / "site-packages" / "configs" / "sweeps" / "theirs.yaml").write_text("grid: {n: [2]}\n")
    monkeypatch.setattr(resources, "_PACKAGE", package)
    assert resources.config_dir("sweeps") == package / "_configs" / "sweeps"
    assert resources.config_names("sweeps") == ["mine"]
    assert resources.config_names("data") == []  # missing folder: no presets, no error


def test_the_wheel_carries_the_configs_where_config_dir_looks():
    hatch = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]
    assert hatch["wheel"]["force-include"]["configs"] == "collapse_lab/_configs"
    assert "configs" in hatch["sdist"]["include"]
