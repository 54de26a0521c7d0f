"""Bundled data: icons, the demo checkpoint and clips."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEMO = ROOT / "demo"
ICONS = ROOT / "icons"
