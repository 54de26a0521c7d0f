import os
from pathlib import Path

# Qt must pick its platform before any Qt import.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CONFORMER_SHAW = FIXTURES / "conformer_shaw"
S3PRL = FIXTURES / "s3prl"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def run_cli(capsys):
    """Run `speechport ARGS...` in-process; returns (exit code, stdout, stderr)."""
    from speechport.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
