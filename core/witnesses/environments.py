"""Witness environments: a genuine upstream library installed in an interpreter of its own.

fairseq2 0.2 needs torch 2.2 and cannot live beside Speechport's torch, so it gets a virtual
environment of its own in the user's data folder (`$XDG_DATA_HOME/speechport/witnesses/NAME/`, or
`SPEECHPORT_WITNESS_HOME`), made from a Python the library supports, with the pinned set of packages
that works. It is installed whole or not at all (a staged folder renamed into place, as an output
folder is), and it says what it holds in `witness.json`. Speechport never imports anything from it:
it runs its own small script there (`channel.py`).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInput, Cancelled, quoted
from ..progress import Progress, ensure
from ..storage.cache_store import data_root
from ..storage.output_folder import StagedFolder

WITNESS_HOME_ENV = "SPEECHPORT_WITNESS_HOME"
MANIFEST = "witness.json"
HEALTH_TIMEOUT_S = 300  # importing torch 2.2 and fairseq2 the first time reads ~5 GB of libraries from disk


@dataclass(frozen=True)
class WitnessSpec:
    """What one witness is: the packages that work together, the Pythons they install on, its cost."""

    name: str
    title: str
    packages: tuple[str, ...]
    pythons: tuple[tuple[int, int], ...]  # the interpreter versions the pinned wheels exist for
    disk_bytes: int  # measured: what the environment takes on disk
    minutes: float  # measured: how long the install takes with a warm pip cache
    imports: tuple[str, ...]  # what the health check imports
    script: str  # Speechport's script the witness runs (scripts/)
    why_so_large: str


FAIRSEQ2 = WitnessSpec(
    name="fairseq2",
    title="the genuine fairseq2 0.2.1",
    # fairseq2 0.2.1 pins torch 2.2; torchaudio matches it; numpy 2 breaks torch 2.2's extensions.
    packages=("torch==2.2.2", "torchaudio==2.2.2", "fairseq2==0.2.1", "fairseq2n==0.2.1", "numpy<2", "soundfile",
              "safetensors"),
    pythons=((3, 8), (3, 9), (3, 10), (3, 11)),  # fairseq2n 0.2.1's wheels
    disk_bytes=int(5.1e9),
    minutes=2.0,
    imports=("torch", "fairseq2", "fairseq2n", "safetensors"),
    script="fairseq2_witness.py",
    why_so_large="torch 2.2.2's wheels bring their CUDA libraries, though only the CPU is used",
)
SPECS = {FAIRSEQ2.name: FAIRSEQ2}
DISK_MARGIN = 1.1  # pip unpacks wheels beside what it installs: ask for a tenth more than the result takes


def witnesses_home() -> Path:
    """Where witnesses live: SPEECHPORT_WITNESS_HOME, else the user's data folder."""
    chosen = os.environ.get(WITNESS_HOME_ENV, "")
    return Path(chosen).expanduser() if chosen else data_root() / "witnesses"


def spec_named(name: str) -> WitnessSpec:
    if name not in SPECS:
        raise BadInput(f"no witness is called {quoted(name)}; Speechport knows {', '.join(SPECS)}")
    return SPECS[name]


@dataclass
class Witness:
    """An installed witness environment."""

    spec: WitnessSpec
    folder: Path
    manifest: dict = field(default_factory=dict)

    @property
    def python(self) -> Path:
        return self.folder / "bin" / "python"

    @property
    def script(self) -> Path:
        return Path(__file__).resolve().parent / "scripts" / self.spec.script

    def describe(self) -> str:
        versions = self.manifest.get("versions") or {}
        return ", ".join(f"{name} {version}" for name, version in versions.items())


def find(name: str) -> Witness | None:
    """The installed witness of that name, or None (nothing there, or not a witness Speechport made)."""
    spec = spec_named(name)
    folder = witnesses_home() / name
    if folder.is_symlink() or not folder.is_dir():
        return None
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        manifest = {}
    if not isinstance(manifest, dict):
        manifest = {}
    return Witness(spec, folder, manifest)


def required(name: str) -> Witness:
    """The installed witness, or BadInput saying how to install it."""
    witness = find(name)
    if witness is None:
        spec = spec_named(name)
        raise BadInput(f"{spec.title} is not installed as a witness (about {spec.disk_bytes / 1e9:.1f} GB, "
                       f"{spec.minutes:g} minutes)", cli_hint=f"to install it: speechport witness install {name}")
    return witness


# -- checking one --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    works: bool
    versions: dict
    problem: str | None = None


HEALTH_SCRIPT = (
    "import importlib, json, platform, sys\n"
    "found = {'python': platform.python_version()}\n"
    "for name in sys.argv[1:]:\n"
    "    module = importlib.import_module(name)\n"
    "    found[name] = getattr(module, '__version__', '?').split('+')[0]\n"
    "print('SPEECHPORT-HEALTH ' + json.dumps(found))\n"
)


def health(witness: Witness, timeout: float = HEALTH_TIMEOUT_S) -> Health:
    """Whether the witness still works: its interpreter imports what the witness needs."""
    if not witness.python.exists():
        return Health(False, {}, f"{witness.python} is missing")
    try:
        done = subprocess.run([str(witness.python), "-I", "-c", HEALTH_SCRIPT, *witness.spec.imports],
                              capture_output=True, text=True, timeout=timeout, env=_clean_env())
    except subprocess.TimeoutExpired:
        return Health(False, {}, f"importing its libraries took more than {timeout:g} s")
    except OSError as exc:
        return Health(False, {}, f"its interpreter cannot start ({exc.strerror or exc})")
    for line in done.stdout.splitlines():
        if line.startswith("SPEECHPORT-HEALTH "):
            try:
                return Health(True, json.loads(line.removeprefix("SPEECHPORT-HEALTH ")))
            except ValueError:
                break
    error = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return Health(False, {}, error[-1][:300] if error else f"its interpreter ended with status {done.returncode}")


def listing(check: bool = True) -> list[dict]:
    """Every witness Speechport knows: installed or not, its versions, whether it works; and the
    in-process S3PRL backend, available when `s3prl` is importable here."""
    entries = []
    for spec in SPECS.values():
        witness = find(spec.name)
        entry = {"name": spec.name, "kind": "environment", "title": spec.title, "installed": witness is not None,
                 "folder": str(witness.folder if witness else witnesses_home() / spec.name), "versions": None,
                 "works": None, "problem": None, "with_seamless": None}
        if witness is not None:
            entry["versions"] = witness.manifest.get("versions")
            entry["with_seamless"] = witness.manifest.get("with_seamless")
            if check:
                found = health(witness)
                entry.update(works=found.works, problem=found.problem)
                if found.works:
                    entry["versions"] = {**(entry["versions"] or {}), **found.versions}
        entries.append(entry)
    s3prl = importlib.util.find_spec("s3prl") is not None
    versions = None
    if s3prl:
        try:
            versions = {"s3prl": importlib.metadata.version("s3prl")}
        except importlib.metadata.PackageNotFoundError:
            versions = None
    entries.append({"name": "s3prl", "kind": "in-process", "title": "S3PRL 0.4.18's own modules, in Speechport's "
                    "interpreter (--original-backend s3prl)", "installed": s3prl, "folder": None, "versions": versions,
                    "works": s3prl if check else None, "problem": None if s3prl else "s3prl is not importable",
                    "with_seamless": None})
    return entries


# -- installing one ------------------------------------------------------------------------------------


def python_version(python: str | Path) -> tuple[int, int] | None:
    try:
        done = subprocess.run([str(python), "-I", "-c", "import sys; print('%d %d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=60, env=_clean_env())
        major, minor = done.stdout.split()
        return int(major), int(minor)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def choose_python(spec: WitnessSpec, given: str | Path | None = None) -> Path:
    """`given`, or the first Python the witness supports: this interpreter, then python3.11 … python3.8
    on the PATH. BadInput naming the versions when none fits."""
    wanted = " or ".join(f"{major}.{minor}" for major, minor in spec.pythons)
    if given is not None:
        path = shutil.which(str(given)) or str(given)
        version = python_version(path)
        if version is None:
            raise BadInput(f"{given}: not a Python interpreter that runs")
        if version not in spec.pythons:
            raise BadInput(f"{given} is Python {version[0]}.{version[1]}; {spec.title} installs on Python {wanted} "
                           "only")
        return Path(path)
    candidates = [sys.executable] + [f"python{major}.{minor}" for major, minor in reversed(spec.pythons)]
    for candidate in candidates:
        path = shutil.which(candidate) if os.sep not in candidate else candidate
        if path and python_version(path) in spec.pythons:
            return Path(path)
    raise BadInput(f"no Python {wanted} found (this one is {sys.version_info[0]}.{sys.version_info[1]}); "
                   f"{spec.title}'s wheels exist for those versions only", cli_hint="give one: --python PATH")


def check_free_space(folder: Path, spec: WitnessSpec) -> None:
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    needed = int(spec.disk_bytes * DISK_MARGIN)
    if free < needed:
        raise BadInput(f"{probe}: {free / 1e9:.1f} GB free, but {spec.title} needs about {needed / 1e9:.1f} GB "
                       f"({spec.why_so_large}); free some space or set {WITNESS_HOME_ENV} to another disk")


def install(name: str, *, python: str | Path | None = None, with_seamless: str | None = None,
            progress: Progress | None = None, pip_args: tuple[str, ...] = ()) -> Witness:
    """Create the witness environment, or replace a broken one; whole or not at all. Cancel stops pip
    and removes everything it made."""
    spec = spec_named(name)
    progress = ensure(progress)
    home = witnesses_home()
    interpreter = choose_python(spec, python)
    check_free_space(home, spec)
    home.mkdir(parents=True, exist_ok=True)
    target = home / spec.name
    with StagedFolder(target, force=True) as staged:
        progress.stage(f"creating the environment with {interpreter}")
        _run([str(interpreter), "-m", "venv", str(staged.path)], progress, "creating the environment")
        pip = [str(staged.path / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--no-input"]
        progress.stage(f"installing {', '.join(spec.packages)}", items_total=len(spec.packages))
        _run([*pip, "install", "--progress-bar", "off", *pip_args, *spec.packages], progress, "installing the packages",
             count_packages=True)
        if with_seamless:
            progress.stage(f"installing seamless_communication from {with_seamless} (without its dependencies)")
            _run([*pip, "install", "--no-deps", "--progress-bar", "off", *pip_args, with_seamless], progress,
                 "installing seamless_communication")
        progress.stage("checking the witness imports its libraries")
        witness = Witness(spec, staged.path)
        found = health(witness)
        if not found.works:
            raise BadInput(f"the {spec.name} witness was installed but does not work: {found.problem}")
        manifest = {"name": spec.name, "packages": list(spec.packages), "with_seamless": with_seamless,
                    "python": str(interpreter), "versions": found.versions,
                    "installed": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        (staged.path / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        progress.stage("moving the witness into place")
        folder = staged.commit()
    progress.finish()
    return Witness(spec, folder, manifest)


def remove(name: str) -> Path | None:
    """Remove the installed witness; None when there was none."""
    spec = spec_named(name)
    folder = witnesses_home() / spec.name
    if folder.is_symlink():
        raise BadInput(f"{folder}: is a symbolic link, not a witness Speechport installed; remove it yourself")
    if not folder.is_dir():
        return None
    if not (folder / MANIFEST).is_file() and not (folder / "pyvenv.cfg").is_file():
        raise BadInput(f"{folder}: not a witness environment (no {MANIFEST}); remove it yourself")
    shutil.rmtree(folder)
    return folder


_COLLECTING = re.compile(r"^Collecting (\S+)")


def _run(command: list[str], progress: Progress, what: str, count_packages: bool = False) -> None:
    """Run an installer step in its own process group, passing its lines on as progress and killing
    the whole group on cancel; BadInput with its last lines when it fails."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                               start_new_session=True, env=_clean_env())
    tail: list[str] = []
    try:
        for line in process.stdout:
            line = line.rstrip()
            if not line:
                continue
            tail = (tail + [line])[-20:]
            if count_packages and _COLLECTING.match(line):
                progress.advance(items=1)
            if line.startswith(("Collecting", "Installing", "Successfully")):
                progress.log(line)
            if progress.cancelled:
                raise Cancelled("cancelled; the witness was not installed and nothing is left")
        process.wait()
    except BaseException:
        _kill(process)
        raise
    if process.returncode != 0:
        errors = [line for line in tail if "error" in line.lower()] or tail[-3:]
        raise BadInput(f"{what} failed (exit status {process.returncode}): {' / '.join(errors)[-600:]}")


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            process.kill()
        process.wait()


def _clean_env() -> dict[str, str]:
    """What a witness's processes see: none of Speechport's Python settings, the user's PATH and home,
    pip's configuration (an index or cache the user set) kept."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "PIP_INDEX_URL",
            "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CACHE_DIR", "PIP_NO_INDEX", "PIP_CONSTRAINT",
            "PIP_CONFIG_FILE", "SSL_CERT_FILE", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY")
    return {key: os.environ[key] for key in keep if key in os.environ}
