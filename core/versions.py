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


# What a build of Speechport carries and says it carries (`speechport --version`, the About box): the
# distribution whose version each is. A PySide6 wheel carries the Qt of its own version.
CARRIED = {"torch": "torch", "transformers": "transformers", "Qt": "PySide6_Essentials"}


def carried() -> dict[str, str]:
    """The versions of torch, transformers and Qt this Speechport runs on, read from their metadata
    (nothing is imported), then Python's."""
    found = {}
    for name, distribution in CARRIED.items():
        try:
            found[name] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    found["Python"] = platform.python_version()
    return found


def version_lines() -> list[str]:
    """`speechport --version`: Speechport's version, then what it carries."""
    from .. import __version__

    return [f"speechport {__version__}", ", ".join(f"{name} {version}" for name, version in carried().items())]
