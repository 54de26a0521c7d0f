"""Talking to a witness: its interpreter started on Speechport's script, asked in JSON lines.

The witness reads requests on its stdin and answers, one JSON line each, on a pipe of its own (the
file descriptor is its first argument): what its libraries print on stdout or stderr goes to a log
file and is never taken for an answer. Tensors travel as safetensors files in a private folder.
Every wait has a limit and watches for Cancel; a witness that dies, hangs, answers with anything but
an answer or refuses the checkpoint ends the comparison with one sentence (BadInput) naming the fix.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from ..errors import BadInput, Cancelled, quoted
from ..progress import Progress
from .environments import Witness, _clean_env

START_TIMEOUT_S = 300.0  # importing torch 2.2 from a cold disk
LOAD_TIMEOUT_S = 600.0
RUN_TIMEOUT_S = 1800.0  # a long clip through a full-size model on a small CPU
MAX_ANSWER_BYTES = 1 << 20
POLL_S = 0.1


class WitnessFailed(BadInput):
    """The witness could not give an answer: not installed, broken, dead, hung or talking nonsense."""

    kind = "witness_failed"

    def __init__(self, witness: Witness, what: str):
        super().__init__(f"the {witness.spec.name} witness {what}",
                         cli_hint=f"to install it afresh: speechport witness install {witness.spec.name}")


class WitnessRefused(BadInput):
    """The witness ran, and the genuine library refused the checkpoint: its reason, as it gave it."""

    kind = "witness_refused"


class WitnessProcess:
    """One running witness, asked one request at a time; `close()` ends it, `kill()` at once."""

    def __init__(self, witness: Witness, *, progress: Progress | None = None, threads: int | None = None):
        self.witness = witness
        self.progress = progress
        self.folder = Path(tempfile.mkdtemp(prefix=f"speechport-{witness.spec.name}-witness-"))
        self.log_path = self.folder / "witness.log"
        if not witness.python.exists():
            self._remove_folder()
            raise WitnessFailed(witness, f"is broken: {witness.python} is missing")
        env = {**_clean_env(), "TMPDIR": str(self.folder)}
        if threads:
            env["SPEECHPORT_WITNESS_THREADS"] = str(threads)
        read_end, write_end = os.pipe()
        try:
            with open(self.log_path, "wb") as log:
                self.process = subprocess.Popen(
                    [str(witness.python), "-I", str(witness.script), str(write_end)], stdin=subprocess.PIPE,
                    stdout=log, stderr=log, pass_fds=(write_end,), start_new_session=True, env=env, cwd=self.folder)
        except OSError as exc:
            os.close(read_end)
            self._remove_folder()
            raise WitnessFailed(witness, f"cannot start ({exc.strerror or exc})") from None
        finally:
            os.close(write_end)
        self._answers = read_end
        self._buffer = b""
        self.hello = self.ask({"op": "hello"}, START_TIMEOUT_S)

    # -- asking ---------------------------------------------------------------------------------
    def ask(self, request: dict, timeout: float) -> dict:
        """Send one request and wait for its answer; BadInput for every way that can fail."""
        try:
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            self._died()
        answer = self._read_answer(timeout)
        if answer.get("ok") is True:
            return answer
        message = _one_line(answer.get("message"))
        if answer.get("kind") == "refused":
            raise WitnessRefused(f"{self.witness.spec.title} refuses it: {message}")
        self.kill()
        if answer.get("kind") == "broken":
            raise WitnessFailed(self.witness, f"is broken: {message}")
        raise WitnessFailed(self.witness, f"failed: {message}")

    def _read_answer(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            if self.progress is not None and self.progress.cancelled:
                self.kill()
                raise Cancelled("cancelled; the witness was stopped")
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise WitnessFailed(self.witness, f"did not answer within {timeout:g} s and was stopped")
            ready, _, _ = select.select([self._answers], [], [], min(POLL_S, left))
            if not ready:
                continue
            chunk = os.read(self._answers, 65536)
            if not chunk:
                self._died()
            self._buffer += chunk
            if len(self._buffer) > MAX_ANSWER_BYTES:
                self.kill()
                raise WitnessFailed(self.witness, "answered with more than an answer can hold, and was stopped")
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            answer = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self.kill()
            raise WitnessFailed(self.witness, "answered with something that is not an answer "
                                f"({quoted(line.decode('utf-8', 'replace'), 120)}), and was stopped") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
            self.kill()
            raise WitnessFailed(self.witness, "answered with something that is not an answer, and was stopped")
        return answer

    def _died(self):
        try:
            status = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            status = self.process.returncode
        how = (f"was killed by signal {signal.Signals(-status).name}" if status is not None and status < 0
               else f"stopped with exit status {status}")
        last = self._log_tail()
        self._remove_folder()
        raise WitnessFailed(self.witness, how + (f" ({last})" if last else ""))

    def _log_tail(self) -> str:
        try:
            lines = [line for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return ""
        return _one_line(lines[-1], 300) if lines else ""

    # -- ending ---------------------------------------------------------------------------------
    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write(b'{"op": "bye"}\n')
                self.process.stdin.flush()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin,):
            try:
                stream.close()
            except OSError:
                pass
        if self._answers is not None:
            try:
                os.close(self._answers)
            except OSError:
                pass
            self._answers = None
        self._remove_folder()

    def _remove_folder(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> WitnessProcess:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def _one_line(text, limit: int = 600) -> str:
    """What a witness said, as one line of at most `limit` characters."""
    if not isinstance(text, str) or not text.strip():
        return "no reason given"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
