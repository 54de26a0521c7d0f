"""The desktop package that `packaging/build-linux` makes.

Its metadata is checked always, on the files the build writes for it (fast: no PyInstaller). The
package itself is built from this checkout (reusing this test run's virtual environment), installed
with apt-get, run from outside the checkout with only PATH, HOME and DISPLAY set, and removed again
when CI is set or SPEECHPORT_BUNDLE_TESTS=1: building takes minutes, so elsewhere those tests are
skipped, saying so; under CI they run and fail loudly.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path

import pytest
from bundle_support import clean_env, distinct_colours, env_i, listing, mapped_rows, save_png, virtual_screen

from speechport import __version__
from speechport.core.versions import version_lines

from conftest import CONFORMER_SHAW, FIXTURES
from support import checkpoint_path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "packaging" / "build-linux"
CI_SETUP = ROOT / ".ci" / "setup"
BUILD_TEXT = BUILD.read_text()
PREFIX = Path(re.search(r"^PREFIX=(\S+)", BUILD_TEXT, re.M).group(1))  # where the .deb installs the app
BIN_LINK = Path(re.search(r"^BIN_LINK=(\S+)", BUILD_TEXT, re.M).group(1))
SHARE = Path(re.search(r"^SHARE=(\S+)", BUILD_TEXT, re.M).group(1))
# .ci/setup's system packages that serve only the tests (a virtual screen, a sound server, these checks):
# every other one is a library Qt or QtMultimedia loads, which the package must bring itself.
TEST_ONLY_PACKAGES = {"pulseaudio", "pulseaudio-utils", "xvfb", "xauth", "desktop-file-utils", "shared-mime-info"}
# A bare PyInstaller one-folder build of a script importing torch 2.13 (CPU), PySide6 and transformers
# 5.25, as a tar.gz: the floor a package of the app can be measured against.
BARE_BUILD_TAR_GZ_MIB = 339
SPEECH = CONFORMER_SHAW / "audio" / "s_speech_16k_mono.wav"
TABLE_ROWS = 10  # "the mapping table is filled": at least this many rows show the mapped icon
BUNDLE_TESTS = bool(os.environ.get("CI")) or os.environ.get("SPEECHPORT_BUNDLE_TESTS") == "1"
WAIT_S = 300  # only stops a run that hangs: a cold start on a busy machine takes well under a minute


# -- the metadata, always ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """The package's metadata tree, as the build writes it (everything but the app folder)."""
    root = tmp_path_factory.mktemp("package-metadata")
    subprocess.run([str(BUILD), "--metadata", str(root)], check=True, cwd=ROOT)
    return root


def control_fields(text: str) -> dict[str, str]:
    fields, key = {}, None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and key:
            fields[key] += "\n" + line.strip()
        elif line.strip():
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def depends(fields: dict[str, str]) -> set[str]:
    """The packages Depends names (each alternative of an `a | b`), without versions."""
    return {alternative.split()[0] for part in fields["Depends"].split(",") for alternative in part.split("|")}


def qt_runtime_packages() -> set[str]:
    """The system packages .ci/setup installs for Qt and QtMultimedia (SYSTEM_PACKAGES, less the tests' own)."""
    listed = re.search(r"SYSTEM_PACKAGES=\(([^)]*)\)", CI_SETUP.read_text()).group(1).split()
    return set(listed) - TEST_ONLY_PACKAGES


def desktop_entry(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(path)
    return dict(parser["Desktop Entry"])


def mime_types(path: Path) -> dict[str, set[str]]:
    """Each type the MIME file defines, with its globs."""
    namespace = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
    return {node.get("type"): {glob.get("pattern") for glob in node.findall("m:glob", namespace)}
            for node in ET.parse(path).getroot().findall("m:mime-type", namespace)}


def test_the_control_file_declares_the_libraries_qt_and_qtmultimedia_load(tree, tmp_path):
    fields = control_fields((tree / "DEBIAN" / "control").read_text())
    assert fields["Package"] == "speechport"
    assert fields["Version"] == __version__
    assert fields["Architecture"] == subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                                                    text=True, check=True).stdout.strip()
    declared = depends(fields)
    assert qt_runtime_packages() <= declared, f"not declared: {sorted(qt_runtime_packages() - declared)}"
    assert {"libpulse0", "libgl1", "libegl1", "libxcb1"} <= declared  # QtMultimedia's sound; what Qt never carries
    assert str(PREFIX) in fields["Description"]
    # dpkg itself reads it: a package of the metadata tree builds and says the same.
    deb = tmp_path / "metadata.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)], check=True, capture_output=True)
    said = subprocess.run(["dpkg-deb", "--field", str(deb), "Package", "Version", "Depends"], capture_output=True,
                          text=True, check=True).stdout
    assert depends(control_fields(said)) == declared


@pytest.mark.parametrize("damage", [None, "Name", "Type"])
def test_the_desktop_entry_passes_desktop_file_validate(tree, tmp_path, damage):
    """The entry as built passes without an error, a warning or a hint; without a key the menu needs, it
    fails (the check is not one that passes anything)."""
    entry = tree / "usr" / "share" / "applications" / "speechport.desktop"
    if damage is not None:
        damaged = tmp_path / "speechport.desktop"
        damaged.write_text("".join(line for line in entry.read_text().splitlines(keepends=True)
                                   if not line.startswith(f"{damage}=")))
        entry = damaged
    done = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True, text=True)
    if damage is None:
        assert (done.returncode, done.stdout + done.stderr) == (0, "")
    else:
        assert done.returncode != 0 and f'required key "{damage}"' in done.stdout + done.stderr


def test_the_menu_entry_opens_the_window_on_the_file_it_is_given(tree):
    entry = desktop_entry(tree / "usr" / "share" / "applications" / "speechport.desktop")
    assert entry["Name"] == "Speechport"
    assert entry["Exec"] == f"{BIN_LINK.name} gui %f"  # `speechport gui` alone opens the first window
    assert entry["TryExec"] == BIN_LINK.name and entry["Terminal"] == "false"
    assert entry["Icon"] == "speechport"


def test_checkpoint_files_are_associated_with_speechport(tree, tmp_path):
    """Every kind of checkpoint the window's file dialog offers, but `.bin` (every program's data, far
    too general to claim), gets "Open with Speechport": the MIME file defines types for their globs,
    shared-mime-info reads it, and the desktop entry says it opens those types."""
    from speechport.gui.mapping.inputs_panel import CHECKPOINT_FILTER

    offered = set(re.search(r"\(([^)]*)\)", CHECKPOINT_FILTER).group(1).split()) - {"*.bin"}
    defined = mime_types(tree / "usr" / "share" / "mime" / "packages" / "speechport.xml")
    entry = desktop_entry(tree / "usr" / "share" / "applications" / "speechport.desktop")
    assert set(filter(None, entry["MimeType"].split(";"))) == set(defined)
    mime = tmp_path / "mime"
    shutil.copytree(tree / "usr" / "share" / "mime", mime)
    subprocess.run(["update-mime-database", str(mime)], check=True, capture_output=True)
    globs = {}
    for line in (mime / "globs2").read_text().splitlines():
        if not line.startswith("#"):
            _, kind, glob = line.split(":", 2)
            globs[glob] = kind
    assert offered == set(globs), "the file dialog and the association offer different files"
    assert all(globs[glob] in defined for glob in offered)
    assert "*.bin" not in globs


def test_the_icon_is_in_the_hicolor_theme_at_the_size_its_folder_names(tree):
    icons = tree / "usr" / "share" / "icons" / "hicolor"
    png = icons / "256x256" / "apps" / "speechport.png"
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", head[16:24]) == (256, 256)
    svg = icons / "scalable" / "apps" / "speechport.svg"
    assert ET.parse(svg).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    entry = desktop_entry(tree / "usr" / "share" / "applications" / "speechport.desktop")
    assert png.stem == svg.stem == entry["Icon"]  # the theme finds the icon by the entry's name


def test_version_says_the_torch_transformers_and_qt_it_runs_on(run_cli):
    from PySide6.QtCore import qVersion

    code, stdout, _ = run_cli("--version")
    assert code == 0
    first, second = stdout.splitlines()
    assert first == f"speechport {__version__}"
    assert f"torch {metadata.version('torch')}" in second
    assert f"transformers {metadata.version('transformers')}" in second
    assert f"Qt {qVersion()}" in second  # the Qt the wheel carries is the one that runs


# -- the package itself, under CI ----------------------------------------------------------------------


class Package:
    def __init__(self, deb: Path, tarball: Path, built: str):
        self.deb = deb
        self.tarball = tarball
        self.built = built  # what the build said (sizes, times)
        self.listing: dict[str, tuple] = {}


def _as_root(*command: str) -> list[str]:
    return list(command) if os.geteuid() == 0 else ["sudo", "-n", *command]


@pytest.fixture(scope="module")
def package():
    if not BUNDLE_TESTS:
        pytest.skip("building the desktop package takes minutes: CI runs these (or SPEECHPORT_BUNDLE_TESTS=1)")
    if os.geteuid() != 0 and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode != 0:
        pytest.fail("installing the package needs root (or sudo without a password)")
    env = {**os.environ, "SPEECHPORT_BUILD_VENV": sys.prefix}  # this test run's environment, reused
    done = subprocess.run([str(BUILD)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"build-linux failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    built = Package(ROOT / "dist" / f"speechport_{__version__}_{arch}.deb",
                    ROOT / "dist" / f"speechport-{__version__}-linux-{os.uname().machine}.tar.gz", done.stdout)
    print(done.stdout)
    command = _as_root("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "--reinstall",
                       f"./{built.deb.relative_to(ROOT)}")
    install = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if install.returncode != 0:  # a dependency apt's lists do not know yet: as a software centre would, update them
        subprocess.run(_as_root("apt-get", "update", "-q"), capture_output=True)
        install = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    built.listing = listing(PREFIX)
    try:
        yield built
    finally:
        subprocess.run(_as_root("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "remove", "-y", "-q",
                                "speechport"), capture_output=True)


def run_installed(home: Path, *args: str, display: str | None = None, timeout: float = WAIT_S):
    """The installed `speechport` as a user runs it: from their home, with nothing else in the environment."""
    return subprocess.run(env_i(clean_env(home, display), "speechport", *args), cwd=home, capture_output=True,
                          text=True, timeout=timeout)


def test_the_package_is_no_larger_than_a_bare_build_and_speechports_own_files(package):
    own = sum(path.stat().st_size for folder in ("core", "gui", "resources") for path in (ROOT / folder).rglob("*")
              if path.is_file() and "__pycache__" not in path.parts)
    assert package.deb.stat().st_size <= BARE_BUILD_TAR_GZ_MIB * 2**20 + own, package.built
    assert (PREFIX / "speechport").is_file() and os.access(PREFIX / "speechport", os.X_OK)
    assert BIN_LINK.resolve() == (PREFIX / "speechport").resolve()


def test_the_installed_app_runs_the_demo_headless_from_a_clean_environment(package, tmp_path):
    done = run_installed(tmp_path, "--version")
    assert (done.returncode, done.stdout.splitlines()) == (0, version_lines()), done.stderr
    done = run_installed(tmp_path, "gui", "--demo")  # no DISPLAY: the demo runs in the terminal
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no display found; running the demo conversion in the terminal instead" in done.stderr
    assert "reloaded with transformers: every loading list empty" in done.stdout
    assert re.search(r"verified on speech_16k\.wav: pass", done.stdout), done.stdout
    assert (tmp_path / ".cache" / "speechport").is_dir()  # its caches are the user's


def test_the_installed_app_converts_a_shared_fixture_and_compares_it(package, tmp_path):
    out = tmp_path / "converted"
    done = run_installed(tmp_path, "convert", str(checkpoint_path("cs_s48")), "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    done = run_installed(tmp_path, "compare", str(checkpoint_path("cs_s48")), str(out), "--audio", str(SPEECH))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pass" in done.stdout
    # A damaged conversion fails in the bundle too (exit 1): the comparison above compared something.
    from safetensors.torch import load_file, save_file

    weights = load_file(out / "model.safetensors")
    weights["encoder.layers.1.ffn2_layer_norm.weight"] *= 1.03
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    done = run_installed(tmp_path, "compare", str(checkpoint_path("cs_s48")), str(out), "--audio", str(SPEECH))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "first divergent layer: encoder.layers.1" in done.stdout + done.stderr


def test_the_installed_app_proves_a_speech_recognition_model_on_a_test_set_with_worker_processes(package, tmp_path):
    """A test set's workers are processes the frozen app starts from itself, and a CTC model's error
    rates come from a compiled library the bundle must carry: both run from the package."""
    ctc = FIXTURES / "ctc"
    checkpoint = ctc / "models/w2v2_base_ctc/w2v2_base_ctc.pt"
    out = tmp_path / "ctc-hf"
    done = run_installed(tmp_path, "convert", str(checkpoint), "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    clips = tmp_path / "set"
    clips.mkdir()
    for clip in sorted((ctc / "audio").glob("*.wav")):
        shutil.copy(clip, clips / clip.name)
    (clips / "metadata.csv").write_text("file_name,text\nspeechlike_1p0s.wav,WHD ZNT\n")
    done = run_installed(tmp_path, "compare", str(checkpoint), str(out), "--dataset", str(clips), "--workers", "2",
                         "--json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    import json

    summary = json.loads(done.stdout)
    assert (summary["passed"], summary["run"]["workers"], summary["text_clips"]) == (3, 2, 1)
    assert summary["transcripts_identical"] == 1.0 and summary["cer_between_models"] == 0.0
    # The one text against what the model hears there (the fixture's reference transcript), edits per character.
    heard = json.loads((ctc / "MANIFEST.json").read_text())["models"]["w2v2_base_ctc"]["references"][
        "speechlike_1p0s"]["transcript"]
    from rapidfuzz.distance import Levenshtein

    expected = Levenshtein.distance("WHD ZNT", heard) / len("WHD ZNT")
    assert summary["cer_original"] == pytest.approx(expected) and summary["cer_converted"] == pytest.approx(expected)


def test_the_window_opens_on_the_demo_with_the_mapping_table_filled(package, tmp_path):
    shot = ROOT / "build" / "bundle-window-1280x800.png"  # kept to look at after a run
    shot.parent.mkdir(exist_ok=True)
    with virtual_screen(1280, 800) as screen:
        app = subprocess.Popen(env_i(clean_env(tmp_path, screen.display), "speechport", "gui", "--demo"),
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            rows, image = 0, screen.pixels()
            deadline = _deadline()
            while rows < TABLE_ROWS and app.poll() is None and not deadline():
                time.sleep(0.1)
                image = screen.pixels()
                rows = mapped_rows(image)
            save_png(image, shot)
            assert app.poll() is None, f"the window closed by itself: {app.stdout.read()}"
            assert distinct_colours(image) > 100, f"a blank screen ({shot})"
            assert rows >= TABLE_ROWS, f"{rows} mapped rows on screen ({shot})"
        finally:
            app.terminate()
            app.communicate(timeout=60)


def test_the_libraries_it_leaves_to_the_system_come_with_its_dependencies(package):
    """Each shared library a file of the bundle needs is in the bundle, or belongs to a package that
    Depends brings (or one they depend on): nothing is found only because this machine happens to have it."""
    fields = control_fields(subprocess.run(["dpkg-deb", "--field", str(package.deb)], capture_output=True, text=True,
                                           check=True).stdout)
    brought, waiting = set(), [name.split(":")[0] for name in depends(fields)]
    while waiting:
        name = waiting.pop()
        if name in brought:
            continue
        brought.add(name)
        shown = subprocess.run(["dpkg-query", "-W", "-f=${Depends},${Pre-Depends}", name], capture_output=True, text=True)
        waiting += [alternative.split()[0].split(":")[0] for part in shown.stdout.split(",") if part.strip()
                    for alternative in part.split("|")]
    inside = PREFIX / "_internal"
    outside: dict[str, set[str]] = {}
    for path in PREFIX.rglob("*.so*"):
        if path.is_symlink() or not path.is_file() or path.read_bytes()[:4] != b"\x7fELF":
            continue
        shown = subprocess.run(["ldd", str(path)], capture_output=True, text=True,
                               env={"PATH": "/usr/bin:/bin", "LD_LIBRARY_PATH": str(inside)})
        for line in shown.stdout.splitlines():
            found = re.match(r"\s*(\S+) => (\S+)", line)
            if found and not found.group(2).startswith(str(PREFIX)):
                outside.setdefault(found.group(2) if found.group(2) != "not" else "not found", set()).add(found.group(1))
    assert "not found" not in outside, f"needed and found nowhere: {sorted(outside['not found'])}"
    owners = {}
    for library in outside:
        shown = subprocess.run(["dpkg", "-S", os.path.realpath(library)], capture_output=True, text=True)
        if shown.returncode != 0:  # /lib is a link to /usr/lib: dpkg knows the path it installed
            shown = subprocess.run(["dpkg", "-S", library], capture_output=True, text=True)
        owners[library] = shown.stdout.split(":")[0]
    missing = {library: owner for library, owner in owners.items() if owner not in brought}
    assert not missing, f"libraries only this machine brings: {missing}"


def test_the_tarball_holds_the_same_app_with_its_launcher_at_the_top(package, tmp_path):
    with tarfile.open(package.tarball) as archive:
        archive.extractall(tmp_path, filter="tar")
    launcher = tmp_path / f"speechport-{__version__}" / "speechport"
    done = subprocess.run(env_i(clean_env(tmp_path), str(launcher), "--version"), cwd=tmp_path, capture_output=True,
                          text=True, timeout=WAIT_S)
    assert (done.returncode, done.stdout.splitlines()) == (0, version_lines()), done.stderr


def test_the_app_never_wrote_inside_its_install_folder(package):
    """After the demo, a conversion, comparisons and the window above, every file and folder under the
    install folder is as installed: no bytecode cache, no settings, no log, nothing touched."""
    assert listing(PREFIX) == package.listing


def test_removing_the_package_leaves_nothing_in_its_folder(package):
    done = subprocess.run(_as_root("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "remove", "-y", "-q",
                                   "speechport"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not PREFIX.exists()
    assert not BIN_LINK.exists() and not BIN_LINK.is_symlink()
    assert not (SHARE / "applications" / "speechport.desktop").exists()


def _deadline():
    end = time.monotonic() + WAIT_S  # only stops a hang; nothing here passes or fails by the clock
    return lambda: time.monotonic() > end
