"""Versions of everything that shapes a conversion's result, for reports and model cards."""

from __future__ import annotations

import platform
from importlib import metadata


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("speechport", "torch", "transformers", "safetensors", "huggingface_hub", "numpy", "soundfile", "soxr"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found
