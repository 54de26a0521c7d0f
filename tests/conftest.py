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
