"""The rooms hold: `lint-imports` keeps every contract of pyproject.toml on the tree, and breaks the
right one when a forbidden import is planted in a copy of it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).parent / "lint-imports"

CORE_NEVER_GUI = "The core never imports the window, the command line or Qt"
WITNESSES = "The witnesses never import the rules they check"
STAGES = "The core's stages point one way: families use the stages, the stages never use a family"
WINDOW_ROOMS = "The window's rooms: the window composes the pages, the pages share the workspace and the widgets"
NO_CIRCLES = "No import circles inside a room"


def lint(root: Path, package_parent: Path) -> tuple[int, str]:
    done = subprocess.run([str(LINT), "--no-cache", "--no-logo", str(root / "pyproject.toml")], cwd=root,
                          capture_output=True, text=True, timeout=600,
                          env={"PATH": str(LINT.parent), "PYTHONPATH": str(package_parent), "COLUMNS": "400"})
    return done.returncode, done.stdout + done.stderr


def contract_lines(output: str) -> dict[str, str]:
    """Each contract's name and its outcome (KEPT or BROKEN), as lint-imports lists them."""
    lines = {}
    for line in output.splitlines():
        for outcome in (" KEPT", " BROKEN"):
            if line.endswith(outcome):
                lines[line.removesuffix(outcome)] = outcome.strip()
    return lines


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory):
    """A copy of the package (the repository root is `speechport`), to plant imports in."""
    parent = tmp_path_factory.mktemp("planted")

    def copy() -> Path:
        target = parent / f"copy{len(list(parent.iterdir()))}"
        package = target / "speechport"
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        package.mkdir(parents=True)
        for name in ("core", "gui", "resources"):
            shutil.copytree(ROOT / name, package / name, ignore=ignore)
        for name in ("__init__.py", "__main__.py", "cli.py", "pyproject.toml"):
            shutil.copy(ROOT / name, package / name)
        return package

    return copy


def test_every_contract_is_kept_on_the_tree():
    code, output = lint(ROOT, ROOT.parent / ".speechport-lint")  # the installed package is this tree
    assert code == 0, output
    assert contract_lines(output) == {CORE_NEVER_GUI: "KEPT", WITNESSES: "KEPT", "The command line and the window "
                                      "sit on the core": "KEPT", STAGES: "KEPT", WINDOW_ROOMS: "KEPT",
                                      NO_CIRCLES: "KEPT"}


PLANTED = {
    "the core imports a widget": ("core/proof/audio.py", "from ...gui.shared import theme  # noqa", CORE_NEVER_GUI),
    "the core imports Qt": ("core/storage/files.py", "import PySide6  # noqa", CORE_NEVER_GUI),
    "a reference model imports the rules": ("core/families/conformer_shaw/reference.py",
                                            "from ...planning import rules  # noqa", WITNESSES),
    "a genuine backend imports its recipe": ("core/families/s3prl_heads/s3prl_backend.py",
                                             "from . import recipe  # noqa", WITNESSES),
    "a stage imports a family": ("core/proof/verification.py", "from ..families import detect  # noqa", STAGES),
    "storage imports planning": ("core/storage/hashing.py", "from ..planning import target_cache  # noqa", STAGES),
    "a shared widget imports a page": ("gui/shared/widgets.py", "from ..mapping import plan_model  # noqa",
                                       WINDOW_ROOMS),
    "two storage modules import each other": ("core/storage/files.py", "from . import hashing  # noqa", NO_CIRCLES),
}


@pytest.mark.parametrize("case", list(PLANTED))
def test_a_planted_violation_breaks_its_contract(package_copy, case):
    relative, line, contract = PLANTED[case]
    package = package_copy()
    module = package / relative
    source = module.read_text()
    start = source.index("\nfrom ") + 1  # among the module's own imports
    module.write_text(source[:start] + line + "\n" + source[start:])
    code, output = lint(package, package.parent)
    assert code != 0, output
    outcomes = contract_lines(output)
    assert outcomes[contract] == "BROKEN", output
