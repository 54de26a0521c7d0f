"""The workers of a test-set run: local processes, or actors on a Ray cluster.

Both follow Ray's batch-inference pattern. A worker holds both models, opened once (`ClipWorker`);
clips are tasks, sent a few ahead so that each worker reads the next clip while its models run;
results stream back to the process that started the run, which writes them as they come. A worker
that dies (killed, out of memory, a crash in a decoder) has its clips given to a new worker; a clip
that two workers died on is recorded as not compared, with why, and the run goes on.

Local workers are processes started with "spawn": a fresh interpreter, never a fork of the
caller, whose threads (the window's Qt, a progress thread) a fork would copy in whatever state they
were. Each ignores Ctrl+C, which the caller handles by stopping them all, and each ends by itself
when the caller dies, as its end of the pipe closes.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import threading
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_for

from ..errors import BadInput
from ..progress import Progress
from .datasets import ClipItem
from .testset_clip import UNREADABLE, ClipOptions, ClipWorker, FatalError, Loaded, OpenModels, record_of

AHEAD = 2  # clips a worker holds beyond the one its models run on: read while they run
MAX_ATTEMPTS = 2  # a clip two workers died on is recorded as not compared; the run goes on
START_METHOD = "spawn"
POLL_S = 0.2  # how often the run looks for a cancel while it waits for results
STOP_WAIT_S = 30.0  # a worker told to stop has this long to say goodbye before it is ended (only ends a hang)

Deliver = Callable[[ClipItem, dict], None]


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def threads_per_worker(workers: int) -> int:
    """Torch threads for each of `workers` processes on this machine: the cores shared out, so
    that workers never fight over them."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def died(item: ClipItem, how: str) -> dict:
    return record_of(Loaded(item), UNREADABLE,
                     f"{item.path}: the worker comparing it died {MAX_ATTEMPTS} times ({how}), so it was not compared")


@dataclass
class PoolReport:
    """What the workers said of themselves: their recipe (from the first to open its models), and each one's peak memory."""

    description: dict | None = None
    peak_memory: list[int] = field(default_factory=list)
    started: int = 0  # workers started, replacements included


# -- local processes -------------------------------------------------------------------------


def _worker_main(conn, models: OpenModels, options: ClipOptions, threads: int) -> None:
    """A local worker: open both models, then compare what the pipe brings, reading ahead."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the caller's to handle: it stops every worker
    try:
        worker = ClipWorker(models, options, threads)
    except BaseException as error:  # noqa: BLE001 - told to the caller, which stops the run with it
        _send(conn, ("failed", FatalError.of(error)))
        return
    if not _send(conn, ("ready", worker.describe())):
        return
    loaded: queue.Queue = queue.Queue(maxsize=AHEAD)

    def read() -> None:
        try:
            while True:
                message = conn.recv()
                if message[0] != "clip":
                    break
                loaded.put(worker.load(message[1]))
        except (EOFError, OSError):
            pass  # the caller is gone: finish
        finally:
            loaded.put(None)

    threading.Thread(target=read, name="read ahead", daemon=True).start()
    while (clip := loaded.get()) is not None:
        try:
            record = worker.compare(clip)
        except BaseException as error:  # noqa: BLE001 - the models' fault (their weights): stops the run
            _send(conn, ("failed", FatalError.of(error)))
            return
        if not _send(conn, ("result", clip.item.key, record)):
            return
    _send(conn, ("done", worker.peak_memory()))


def _send(conn, message) -> bool:
    try:
        conn.send(message)
        return True
    except (OSError, ValueError):  # the caller closed its end, or died
        return False


@dataclass
class _Process:
    process: multiprocessing.process.BaseProcess
    conn: object
    ready: bool = False
    inflight: deque = field(default_factory=deque)


class LocalPool:
    """Worker processes on this machine."""

    kind = "processes"

    def __init__(self, models: OpenModels, options: ClipOptions, workers: int | None = None):
        self.models, self.options = models, options
        self.workers = workers or default_workers()
        self.report = PoolReport()

    def __enter__(self) -> LocalPool:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def run(self, items: Sequence[ClipItem], deliver: Deliver, progress: Progress) -> PoolReport:
        """Compare every item, calling `deliver(item, record)` as each result comes (on this thread);
        `progress.cancel()` stops the workers at once (`Cancelled`)."""
        if not items:
            return self.report
        context = multiprocessing.get_context(START_METHOD)
        count = min(self.workers, len(items))
        threads = threads_per_worker(count)
        pending = deque(items)
        attempts: Counter = Counter()
        replacements = count * 2 + len(items) // 10  # a worker dies now and then; dying on and on is a fault
        workers = [self._start(context, threads) for _ in range(count)]
        try:
            while pending or any(w.inflight for w in workers):
                progress.check()
                for worker in workers:
                    while worker.ready and pending and len(worker.inflight) <= AHEAD:
                        item = pending.popleft()
                        if not _send(worker.conn, ("clip", item)):
                            pending.appendleft(item)
                            break
                        worker.inflight.append(item)
                waitables = {**{w.conn: w for w in workers}, **{w.process.sentinel: w for w in workers}}
                for ready in wait_for(list(waitables), timeout=POLL_S):
                    worker = waitables[ready]
                    if worker not in workers:
                        continue  # already found dead through its other handle
                    if ready is worker.conn:
                        if not self._receive(worker, deliver):
                            self._lost(worker, workers, pending, attempts, deliver)
                    elif not worker.process.is_alive():
                        while worker.conn.poll() and self._receive(worker, deliver):
                            pass  # what it sent before it died
                        self._lost(worker, workers, pending, attempts, deliver)
                if (pending or any(w.inflight for w in workers)) and len(workers) < count:
                    if replacements <= 0:
                        raise RuntimeError("the test set's worker processes keep dying; see the system log "
                                           "(out of memory?)")
                    replacements -= 1
                    workers.append(self._start(context, threads))
            self._stop(workers, gently=True)
        finally:
            self._stop(workers, gently=False)
        return self.report

    def _start(self, context, threads: int) -> _Process:
        ours, theirs = context.Pipe(duplex=True)
        process = context.Process(target=_worker_main, args=(theirs, self.models, self.options, threads),
                                  name="speechport test-set worker", daemon=True)
        process.start()
        theirs.close()  # the worker's end: held only by the worker, so its death closes the pipe
        self.report.started += 1
        return _Process(process, ours)

    def _receive(self, worker: _Process, deliver: Deliver) -> bool:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            return False
        kind = message[0]
        if kind == "ready":
            worker.ready = True
            if self.report.description is None:
                self.report.description = message[1]
        elif kind == "result":
            _, key, record = message
            item = next((i for i in worker.inflight if i.key == key), None)
            if item is not None:
                worker.inflight.remove(item)
                deliver(item, record)
        elif kind == "done":
            self.report.peak_memory.append(int(message[1]))
        elif kind == "failed":
            raise message[1].as_error()
        return True

    def _lost(self, worker: _Process, workers: list, pending: deque, attempts: Counter, deliver: Deliver) -> None:
        """A worker died: its clips go to another worker, or are recorded once two have died on them."""
        if worker in workers:
            workers.remove(worker)
        worker.process.join(timeout=STOP_WAIT_S)
        how = _how_it_ended(worker.process.exitcode)
        if not worker.ready:
            raise RuntimeError(f"a worker process died while it opened the models ({how})")
        for item in reversed(worker.inflight):
            attempts[item.key] += 1
            if attempts[item.key] >= MAX_ATTEMPTS:
                deliver(item, died(item, how))
            else:
                pending.appendleft(item)
        worker.inflight.clear()
        worker.conn.close()

    def _stop(self, workers: list[_Process], gently: bool) -> None:
        if gently:
            for worker in workers:
                _send(worker.conn, ("stop",))
            for worker in workers:
                try:
                    while worker.conn.poll(STOP_WAIT_S):
                        message = worker.conn.recv()
                        if message[0] == "done":
                            self.report.peak_memory.append(int(message[1]))
                            break
                except (EOFError, OSError):
                    pass
                worker.process.join(timeout=STOP_WAIT_S)
            return
        for worker in workers:
            if worker.process.is_alive():
                worker.process.terminate()
        for worker in workers:
            worker.process.join(timeout=STOP_WAIT_S)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        workers.clear()


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is None:
        return "it stopped answering"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"


# -- Ray ---------------------------------------------------------------------------------------


class ClipActor:
    """A Ray actor: a `ClipWorker`. Two calls run at once (`max_concurrency=2`), so that one clip is
    read while the models run on another; the models take one clip at a time."""

    def __init__(self, models: OpenModels, options: ClipOptions, threads: int | None):
        self.failure: FatalError | None = None
        try:
            self.worker = ClipWorker(models, options, threads)
        except BaseException as error:  # noqa: BLE001 - told to the caller by `describe`
            self.failure = FatalError.of(error)

    def describe(self):
        return ("failed", self.failure) if self.failure is not None else ("ready", self.worker.describe())

    def run(self, item: ClipItem):
        try:
            return ("result", self.worker.compare(self.worker.load(item)))
        except BaseException as error:  # noqa: BLE001 - the models' fault: stops the run
            return ("failed", FatalError.of(error))

    def peak_memory(self) -> int:
        return ClipWorker.peak_memory()


def import_ray():
    try:
        import ray
    except ImportError:
        raise BadInput("running on Ray needs Ray, which is not installed here", hint=None,
                       cli_hint='install it with: pip install "speechport[ray]"') from None
    return ray


REACH_TIMEOUT_S = 10.0  # Ray itself retries an address nobody answers at for minutes on end


def check_reachable(address: str) -> None:
    """Refuse (BadInput) a cluster address where nothing answers, before Ray waits on it: "host:port"
    or "ray://host:port"; other forms ("auto", "local") are Ray's to resolve."""
    import socket

    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_TIMEOUT_S).close()
    except OSError as exc:
        raise BadInput(f"cannot start or reach the Ray cluster at {address} (nothing answers there: "
                       f"{exc.strerror or exc})", hint="is the cluster running, and is this its address?") from None


class RayPool:
    """Actors on a Ray cluster: the one at `address`, or, without one, a Ray instance on this machine
    (started for the run and stopped after it; one this process already started is used as it is)."""

    kind = "ray"

    def __init__(self, models: OpenModels, options: ClipOptions, workers: int | None = None,
                 address: str | None = None):
        self.models, self.options, self.address = models, options, address
        self.workers = workers
        self.report = PoolReport()

    def __enter__(self) -> RayPool:
        """Connect to the cluster (or start the local instance): before the run writes anything."""
        ray = import_ray()
        if self.address:
            check_reachable(self.address)
        self._started_here = not ray.is_initialized()
        if self._started_here:
            self._connect(ray)
        elif self.address and self.address.removeprefix("ray://") != ray.get_runtime_context().gcs_address:
            raise BadInput(f"this process is already connected to the Ray cluster at "
                           f"{ray.get_runtime_context().gcs_address}, not {self.address}")
        return self

    def __exit__(self, *exc) -> None:
        if getattr(self, "_started_here", False):
            import ray

            ray.shutdown()

    def run(self, items: Sequence[ClipItem], deliver: Deliver, progress: Progress) -> PoolReport:
        if not items:
            return self.report
        import ray

        return self._run(ray, items, deliver, progress)

    def _connect(self, ray) -> None:
        options = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
        try:
            if self.address:
                ray.init(address=self.address, **options)
            else:
                ray.init(num_cpus=max(default_workers(), self.workers or 1), **options)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise BadInput(f"cannot start or reach {where} ({reason})") from None

    def _run(self, ray, items, deliver, progress) -> PoolReport:
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        count = min(self.workers or max(1, int(cpus)), len(items))
        local = not self.address
        threads = threads_per_worker(count) if local else None  # elsewhere, Ray gives each actor its CPUs' threads
        actor_class = ray.remote(num_cpus=min(1.0, cpus / count), max_restarts=0, max_concurrency=AHEAD)(ClipActor)
        actors = [actor_class.remote(self.models, self.options, threads) for _ in range(count)]
        self.report.started = count
        replacements = count * 2 + len(items) // 10
        pending = deque(items)
        attempts: Counter = Counter()
        inflight: dict = {}  # object ref -> (actor, item)
        ready: set = set()
        describing = {actor.describe.remote(): actor for actor in actors}
        try:
            while pending or inflight or (describing and not ready):
                progress.check()
                for actor in actors:
                    while actor in ready and pending and sum(1 for a, _ in inflight.values() if a is actor) <= AHEAD:
                        item = pending.popleft()
                        inflight[actor.run.remote(item)] = (actor, item)
                waiting = [*inflight, *describing]
                done, _ = ray.wait(waiting, num_returns=1, timeout=POLL_S)
                for ref in done:
                    if ref in describing:
                        actor = describing.pop(ref)
                        state, about = self._get(ray, ref, None)
                        if state == "failed":
                            raise about.as_error()
                        if state == "died":
                            raise RuntimeError(f"a Ray worker died while it opened the models ({about})")
                        ready.add(actor)
                        if self.report.description is None:
                            self.report.description = about
                        continue
                    actor, item = inflight.pop(ref)
                    state, about = self._get(ray, ref, item)
                    if state == "result":
                        deliver(item, about)
                    elif state == "failed":
                        raise about.as_error()
                    else:  # the actor died: its clips go to a new one
                        attempts[item.key] += 1
                        if attempts[item.key] >= MAX_ATTEMPTS:
                            deliver(item, died(item, about))
                        else:
                            pending.appendleft(item)
                        if actor in actors:
                            actors.remove(actor)
                            ready.discard(actor)
                            if replacements <= 0:
                                raise RuntimeError("the test set's Ray workers keep dying")
                            replacements -= 1
                            fresh = actor_class.remote(self.models, self.options, threads)
                            actors.append(fresh)
                            describing[fresh.describe.remote()] = fresh
                            self.report.started += 1
            for actor in actors:
                try:
                    self.report.peak_memory.append(int(ray.get(actor.peak_memory.remote(), timeout=STOP_WAIT_S)))
                except Exception:  # noqa: BLE001 - a figure for the benchmark, never a reason to fail a run
                    pass
        finally:
            for actor in actors:
                try:
                    ray.kill(actor, no_restart=True)
                except Exception:  # noqa: BLE001 - already gone
                    pass
        return self.report

    @staticmethod
    def _get(ray, ref, item):
        from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError

        try:
            return ray.get(ref)
        except (RayActorError, WorkerCrashedError) as exc:
            text = str(exc).strip().splitlines()
            return "died", (text[0][:200] if text else type(exc).__name__)
        except RayTaskError as exc:  # a bug in a call that catches everything: an internal error
            raise RuntimeError(f"a Ray worker failed: {str(exc).strip().splitlines()[0][:300]}") from None
