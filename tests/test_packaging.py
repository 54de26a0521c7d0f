"""The wheel must carry every package and data folder: pyproject lists them explicitly because
the repository root is the `speechport` package."""

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {"speechport"}
    for folder in ("core", "gui", "resources"):
        for init in (ROOT / folder).rglob("__init__.py"):
            found.add("speechport." + ".".join(init.parent.relative_to(ROOT).parts))
    for data in (ROOT / "resources").iterdir():
        if data.is_dir() and not data.name.startswith("__"):
            found.add(f"speechport.resources.{data.name}")
    assert found <= listed, f"missing from pyproject packages: {sorted(found - listed)}"
    assert listed <= found, f"listed but absent: {sorted(listed - found)}"
