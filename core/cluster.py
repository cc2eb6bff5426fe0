"""The batch job on a Ray cluster: the same engine, settings, outputs and manifest as the
local command, computed by workers that each load the models once.

Only file paths and small results (manifest entries) travel through Ray; every worker reads
its inputs from, and writes its outputs to, folders all of them can reach. The run keeps a
journal beside its outputs (`OUT/journal.jsonl`, one line per event, flushed and synced):
the name given to every input before any work starts, then each file as it finishes, with
its SHA-256, its output's and the settings. A rerun of the same command (after a crash, a
cancel or a lost node) keeps the files finished with the same settings and versions whose
input and output still have the SHA-256 recorded (the workers check; the driver reads no more
than each file's header), does the rest under the same names, and every input is in the final
manifest exactly once. A worker lost mid-file costs a retry of that file on another worker; outputs
are written under a temporary name and renamed, so a lost worker leaves no half-written output.

Why Ray actors and not Ray Data's `map_batches`: the same model-once actor pool, plus an
exact per-file account (the journal) that a streaming dataset does not give, without
pandas and pyarrow in the install.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

from . import run_folder
from .batch import anonymize_one, frame_progress, output_name, report
from .journal import CLUSTER_JOURNAL as JOURNAL, Journal
from .pipeline import Engine, Settings, engine_versions, failure_reason
from .report import utc_now
from .run_folder import (FULL, ManifestRoom, OutputNamer, earlier_entries, not_done, recover, remove_unfinished,
                         remove_unrecorded, stop_reason, unchanged)
from .store import NoRoom, out_of_room, write_atomically
from .walk import PassedOver, expand_paths

# Ray's own services are told to stay quiet and local: no usage statistics, no dashboard.
QUIET = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_DOCKER_CPU_WARNING": "1",
         "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0"}


class Unreachable(Exception):
    """No Ray cluster answers at the address given: said before any work starts."""


def reach(address: str) -> str:
    """The head's address (HOST:PORT, or ray://HOST:PORT) once a head answers there, or
    `Unreachable` with a plain reason: Ray itself retries a wrong address for minutes, printing
    its logs, and waits on a port that is not a head's for good. `auto` is the address Ray finds
    (RAY_ADDRESS, else the last `ray start` on this machine), checked as a named one: a head gone
    since it was started (killed, the machine restarted) left Ray waiting on it too."""
    if address == "local":
        return address
    said = address
    if address == "auto":
        address = _found()
        said = f"{address} (where --ray auto looks: RAY_ADDRESS, else the last `ray start` on this machine)"
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise Unreachable(f"--ray {said}: name the cluster's head as HOST:PORT (the port its `ray start --head` "
                          "gave, 6379 unless changed), or use auto or local")
    tls = os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true")  # then the greeting is TLS's: left to Ray
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_SECONDS) as head:
            if tls or _greets(head):
                return address
    except OSError as exc:
        raise Unreachable(f"no Ray cluster answers at {said} ({exc.strerror or exc}): is its head started "
                          "(`ray start --head`) and the address right?") from None
    raise Unreachable(_not_a_head(said, f"not with gRPC's greeting within {REACH_SECONDS} s"))


_NONE_HERE = ("--ray auto: no Ray cluster is running on this machine: start one (`ray start --head`) or name its "
              "head as HOST:PORT, or use --ray local")


def _found() -> str:
    """The address `ray.init(address="auto")` would join, as found (Ray's next step, which turns
    127.0.0.1 into this machine's network address, asks the network: not here)."""
    from ray._private.services import get_ray_address_from_environment

    try:
        return get_ray_address_from_environment("auto", None)
    except ConnectionError:
        raise Unreachable(_NONE_HERE) from None


# HTTP/2's opening (RFC 9113, 3.4): its preface, then an empty SETTINGS frame.
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _greets(head: socket.socket) -> bool:
    """Whether the port answers HTTP/2's opening as a head's gRPC server does, with a SETTINGS
    frame (the first frame any HTTP/2 server sends), within `REACH_SECONDS`: Ray's client waits
    on a port that answers otherwise, or not at all, for good, saying nothing."""
    head.sendall(_PREFACE)
    heard = b""
    try:
        while len(heard) < 9 and (more := head.recv(9 - len(heard))):
            heard += more
    except OSError:  # a timeout, or reset: not a head
        return False
    return len(heard) == 9 and heard[3] == 4


@contextlib.contextmanager
def _quieted() -> Iterator[Callable[[], str]]:
    """The process's standard error kept, not shown, while Ray joins a cluster: its native client
    logs each failed try (a line a second for 20 s). Yields what was said, to read the reason."""
    import sys

    sys.stderr.flush()
    kept, shown = tempfile.TemporaryFile(), os.dup(2)
    os.dup2(kept.fileno(), 2)
    try:
        yield lambda: (kept.seek(0), kept.read().decode(errors="replace"))[1]
    finally:
        sys.stderr.flush()
        os.dup2(shown, 2)
        os.close(shown)
        kept.close()


def _refused(address: str) -> str:
    return (f"the Ray cluster at {address} refused this machine: its authentication token is missing or not the "
            "cluster's (Ray reads it from RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH names, or "
            "~/.ray/auth_token): give it the token the cluster was started with, then run again")


def _not_a_head(address: str, why) -> str:
    return (f"{address} answers, but not as a Ray cluster's head ({why}): is the port the one its `ray start --head` "
            "gave (6379 unless changed)?")


# How long a cluster's head may take to answer before `reach` gives up.
REACH_SECONDS = 5


def connect(address: str):
    """Join the cluster at `address` (`auto`, `HOST:PORT`) or start one on this machine,
    on the loopback address only (`local`)."""
    os.environ.update(QUIET)
    options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address != "local":
        import ray
        from ray.exceptions import AuthenticationError

        address = reach(address)
        with _quieted() as said:
            try:
                ray.init(address=address, **options)
                return ray
            except AuthenticationError:  # asked for here (RAY_AUTH_MODE=token), and not found
                raise Unreachable(_refused(address)) from None
            except ConnectionError as exc:  # a cluster with tokens (Ray's default from 2.61) says so to the client
                raise Unreachable(_refused(address) if "InvalidAuthToken" in said() else
                                  _not_a_head(address, exc)) from None
    # A cluster of one machine. Ray would bind its services to the machine's network address,
    # found by a UDP connect to 8.8.8.8, unless told that clusters are off (its Windows/macOS
    # switch, read when Ray is imported): then everything is on 127.0.0.1. Ray's head also
    # asks cloud metadata servers (169.254.169.254, metadata.google.internal) what cloud it is
    # on, even with usage statistics off, unless ~/ray_bootstrap_config.yaml names a provider:
    # its processes get a private HOME holding one.
    home = Path(tempfile.mkdtemp(prefix="face-privacy-ray-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    (home / "ray_bootstrap_config.yaml").write_text("provider:\n  type: local\n")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    # Token authentication, as Ray now starts a local cluster by default (its token in the
    # private HOME), asked for by name so that Ray does not print how to turn it off.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    real_home = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        import ray

        ray.init(**options)
    finally:
        if real_home is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = real_home
    return ray


def settings_key(settings: Settings, check: bool, max_pixels: int) -> str:
    """What a file done earlier must have been done with to be kept: these settings, and the
    same code and models (`engine_versions`; a new version's covers are not an old one's)."""
    data = json.dumps([settings.to_dict(), check, max_pixels, engine_versions()], sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


class FileWorker:
    """A Ray actor: the engine loaded once, then one file per call."""

    def __init__(self, settings: dict, out_dir: str, check: bool, max_pixels: int):
        self.engine = Engine(max_pixels=max_pixels)
        self.settings = Settings(**settings)
        self.out_dir = Path(out_dir)
        self.check = check
        self.doing = ""  # the video in hand's progress line, for `where`

    def where(self) -> str:
        """How far the video in hand has got, as the local command's line says it ("clip.mp4:
        detecting faces, frame 250/1500"), or "" (asked in the "ask" group, beside the work)."""
        return self.doing

    def _note(self, index: int, total: int, message: str) -> None:
        self.doing = message

    def anonymize(self, path: str, name: str, earlier: dict | None = None) -> dict:
        """One file; `name` is empty when its header could not be read ahead (reading it here
        then fails as it would in the local command, or names it if it reads after all).
        `earlier` is its entry from an earlier run: kept (marked `resumed`) when the input and the
        output still have the SHA-256 it records, else the file is done again."""
        entry: dict = {"input": path}
        try:
            if earlier and unchanged(earlier, Path(path), self.out_dir):
                return earlier | {"resumed": True}
            if not name:
                self.engine.read(Path(path))
                name = output_name(OutputNamer(self.out_dir), Path(path))
            entry.update(anonymize_one(self.engine, Path(path), self.out_dir, name, self.settings, self.check,
                                       frame_progress(self._note, 0, 0, Path(path))))
        except Exception as exc:  # noqa: BLE001 - one file's failure is that file's error
            entry = {"input": path, "error": failure_reason(exc, self.out_dir)}
            if out_of_room(exc):  # the driver stops the run: every file after it would be refused too
                entry["no_room"] = exc.strerror or str(exc)
        finally:
            self.doing = ""
        return entry

    def detect(self, path: str) -> dict:
        from .cli import detect_one

        try:
            return detect_one(self.engine, Path(path), self.settings, frame_progress(self._note, 0, 0, Path(path)))
        finally:
            self.doing = ""


def manifest_path(out_dir: Path) -> Path:
    """Where a cluster run into `out_dir` writes its manifest: where its first run did (kept in
    its journal; each rerun writes it again, whole), else a name no earlier run's record has
    (`run_folder.manifest_path`: `manifest.json`, or `manifest-2.json` beside a run on one machine)."""
    given = Journal(out_dir / JOURNAL).manifest
    return out_dir / given if given else run_folder.manifest_path(out_dir)


def unfinished(out_dir: Path) -> bool:
    """Whether a cluster run into `out_dir` was killed (its driver) before it wrote its manifest:
    its outputs have no record but its journal, which the same command with `--ray` finishes."""
    return (out_dir / JOURNAL).is_file() and not manifest_path(out_dir).exists()


def anonymize_files(address: str, paths: list[Path], out_dir: Path, settings: Settings, check: bool = False,
                    max_pixels: int | None = None,
                    progress: Callable[[int, int, str], None] | None = None, manifest: Path | None = None) -> dict:
    """`batch.anonymize_files` on a cluster, its manifest written to `manifest` (by default
    `manifest_path(out_dir)`); resumable (see the module's text)."""
    from .images import DEFAULT_MAX_PIXELS

    max_pixels = max_pixels or DEFAULT_MAX_PIXELS
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_unfinished(out_dir)  # a lost worker's
    recover(out_dir)  # a killed run on one machine's
    manifest = manifest or manifest_path(out_dir)
    journal = Journal(out_dir / JOURNAL)
    key = settings_key(settings, check, max_pixels)
    passed = PassedOver()
    jobs = list(expand_paths(paths, skip=out_dir, passed=passed))
    entries: dict[int, dict] = {}
    room = ManifestRoom(manifest, [*passed.files, *passed.runs, *(path for path, _ in jobs)])
    resumed: int = 0
    stopped: str | bool = False
    try:
        ray = connect(address)  # a cluster that cannot be reached is said before anything is written
        try:
            if journal.manifest is None:  # never another run's record: the same name for every rerun
                journal.append({"manifest": manifest.name})
            recorded = earlier_entries(out_dir, settings, check, engine_versions())
            todo = _plan(journal, key, recorded, jobs, out_dir, entries, progress)
            make = _workers(ray, asdict(settings), str(out_dir), check, max_pixels)
            for index, entry in _run(ray, make, _worker_count(ray, len(todo)), todo,
                                     lambda w, job: w.anonymize.remote(job[1], job[2], job[3]),
                                     _heard(progress, lambda: len(entries), len(jobs))):
                earlier = entry.pop("resumed", False)
                refused = entry.pop("no_room", None)
                if refused:  # not the file's fault: done once there is room
                    entry["error"] = FULL
                if earlier:
                    resumed += 1
                else:
                    journal.append({"done": entry["input"], "settings_key": key, "entry": entry})
                entries[index] = entry
                report(progress, len(entries), len(jobs), entry, earlier)
                if refused:
                    raise NoRoom(refused)
                room.keep(entry)
        except (KeyboardInterrupt, NoRoom) as exc:  # what is done is recorded; the same command goes on from there
            stopped = stop_reason(exc)
        finally:
            ray.shutdown()
    finally:
        room.release()  # given back for the manifest
    for index, (path, _) in enumerate(jobs):
        if index not in entries:
            entries[index] = {"input": str(path), "error": not_done(stopped)}
            remove_unrecorded(out_dir, journal.names.get(str(path)))
    record = {
        "created": utc_now(),
        "settings": settings.to_dict(),
        "versions": engine_versions(),
        "check": check,
        "cluster": {"address": address},
        "resumed": resumed,
        "files": [entries[i] for i in range(len(jobs))],
        **passed.record(),
    } | ({"stopped": stopped} if stopped else {})
    write_atomically(manifest, json.dumps(record, indent=2).encode())
    return record


def _plan(journal: Journal, key: str, recorded: dict[str, dict], jobs: list, out_dir: Path, entries: dict[int, dict],
          progress: Callable[[int, int, str], None] | None) -> list[tuple[int, str, str, dict | None]]:
    """The files for the workers, each with its output's name (given here from its header, and
    kept in the journal) and its earlier run's entry if it was done with these settings: from the
    journal, else from the manifest of another run into the folder (`recorded`, as
    `run_folder.earlier_entries` finds them: a run on one machine's too, as such a run keeps a cluster
    run's). The files that cannot be processed go into `entries` with their errors."""
    namer = OutputNamer(out_dir, taken={name.lower() for name in journal.names.values()})
    todo: list[tuple[int, str, str, dict | None]] = []
    for index, (path, problem) in enumerate(jobs):
        earlier = journal.finished(str(path), key, out_dir)
        if earlier is not None:
            todo.append((index, str(path), journal.names.get(str(path), ""), earlier))
            continue
        if problem:
            entries[index] = {"input": str(path), "error": problem}
            if progress:
                progress(len(entries), len(jobs), f"{path}: {problem}")
            continue
        try:
            name = journal.names.get(str(path)) or output_name(namer, path)
        except Exception:  # noqa: BLE001 - an unreadable header: a worker reads it and reports why
            todo.append((index, str(path), "", None))
            continue
        if str(path) not in journal.names:
            journal.append({"assign": str(path), "name": name})
            journal.names[str(path)] = name
        todo.append((index, str(path), name, recorded.get(str(path))))
    return todo


def detect_files(address: str, paths: list[Path], settings: Settings, max_pixels: int,
                 progress: Callable[[int, int, str], None] | None = None,
                 passed: PassedOver | None = None) -> list[dict]:
    """`detect` on a cluster: the same JSON as the local command, in input order (what the walk
    passes over in `passed`); how far the workers' videos have got said to `progress` while none
    finishes."""
    jobs = list(expand_paths(paths, passed=passed))
    results: dict[int, dict] = {i: {"path": str(p), "error": problem} for i, (p, problem) in enumerate(jobs) if problem}
    todo = [(i, str(p), "", None) for i, (p, problem) in enumerate(jobs) if not problem]
    ray = connect(address)
    try:
        make = _workers(ray, asdict(settings), "", False, max_pixels)
        results.update(_run(ray, make, _worker_count(ray, len(todo)), todo, lambda w, job: w.detect.remote(job[1]),
                            _heard(progress, lambda: len(results), len(jobs))))
    finally:
        ray.shutdown()
    return [results[i] for i in range(len(jobs))]


def _workers(ray, *args) -> Callable[[], object]:
    """A maker of FileWorker actors, one CPU each, spread over the nodes; a file at a time, and
    `where` answered beside it."""
    actor = ray.remote(num_cpus=1, scheduling_strategy="SPREAD", concurrency_groups={"ask": 1})(FileWorker)
    return lambda: actor.remote(*args)


def _worker_count(ray, files: int) -> int:
    return max(1, min(files, int(ray.cluster_resources().get("CPU", 1))))


# A file whose worker was lost (a node died, a process was killed) is given to another
# worker up to this many times.
LOST_WORKER_RETRIES = 3


# While no file finishes, the workers are asked this often how far their videos have got.
HEARTBEAT_SECONDS = 5


def _run(ray, make_worker: Callable[[], object], count: int, todo: list, call,
         waiting: Callable[[list[str]], None] | None = None) -> Iterator[tuple[int, dict]]:
    """Yield (index, result) as the workers finish, keeping two files queued per worker (so
    memory and the object store stay small however long the list). A worker that dies is
    dropped and its files go to the others (a new worker is made when none is left). While
    none finishes, `waiting` is given the workers' `where` every HEARTBEAT_SECONDS."""
    from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

    workers = [make_worker() for _ in range(count)]
    pending: dict = {}
    queue = list(todo)
    tries: dict[int, int] = {}
    free = [w for w in workers for _ in range(2)]
    while queue or pending:
        if not workers:
            workers.append(make_worker())
            free.extend([workers[0]] * 2)
        while queue and free:
            worker = free.pop()
            job = queue.pop(0)
            pending[call(worker, job)] = (job, worker)
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=HEARTBEAT_SECONDS if waiting else None)
        if not ready:
            waiting(_where(ray, {worker for _, worker in pending.values()}))
            continue
        job, worker = pending.pop(ready[0])
        try:
            result = ray.get(ready[0])
        except (RayActorError, ActorDiedError, ActorUnavailableError) as exc:
            if worker in workers:
                workers.remove(worker)
            free = [w for w in free if w is not worker]
            tries[job[0]] = tries.get(job[0], 0) + 1
            if tries[job[0]] <= LOST_WORKER_RETRIES:
                queue.insert(0, job)
                continue
            result = {"input": job[1], "path": job[1], "error": f"the cluster lost every worker it ran on ({exc})"}
        except Exception as exc:  # noqa: BLE001 - Ray gave up on this file: its error, the rest go on
            free.append(worker)
            result = {"input": job[1], "path": job[1], "error": f"the cluster could not process it ({exc})"}
        else:
            free.append(worker)
        yield job[0], result


def _heard(progress: Callable[[int, int, str], None] | None, done: Callable[[], int],
           total: int) -> Callable[[list[str]], None] | None:
    """What `_run` is to call while no file finishes: each busy worker's video line said to
    `progress`, numbered by the files `done` so far."""
    if not progress:
        return None

    def waiting(lines: list[str]) -> None:
        for line in lines:
            progress(done(), total, f"{line} (on the cluster)")
    return waiting


def _where(ray, workers) -> list[str]:
    """The busy workers' progress lines (none when one cannot answer: its loss is seen by the
    wait for its file)."""
    asked = [worker.where.options(concurrency_group="ask").remote() for worker in workers]
    try:
        return [line for line in ray.get(asked, timeout=HEARTBEAT_SECONDS) if line]
    except Exception:  # noqa: BLE001 - a progress line is not worth a failure
        return []


class LoopbackCluster:
    """A real Ray cluster of `nodes` nodes (one CPU each) on 127.0.0.1, started with Ray's
    own `ray start`, with its own token: to try the cluster path, for the tests and the
    benchmark. `environment` is what a driver needs to join it; `raylets` the node processes."""

    def __init__(self, nodes: int, temp: Path):
        import secrets
        import subprocess
        import sys

        self._run = subprocess.run
        self.ray = Path(sys.executable).parent / "ray"
        token = temp / "token"
        token.write_text(secrets.token_hex(32))
        self.environment = os.environ | QUIET | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        self.raylets: list[int] = []
        node = ["--num-cpus=1", "--node-ip-address=127.0.0.1"]
        # Ray's socket paths must stay short: its temporary folder goes in /tmp.
        head = [self.ray, "start", "--head", f"--port={port}", "--include-dashboard=false", "--disable-usage-stats",
                f"--temp-dir=/tmp/rt{port}", *node]
        for command in [head] + [[self.ray, "start", f"--address={self.address}", *node]] * (nodes - 1):
            before = _raylets()
            self._run(command, env=self.environment, check=True, capture_output=True, timeout=180)
            self.raylets += sorted(_raylets() - before)

    def stop(self) -> None:
        self._run([self.ray, "stop", "--force"], env=self.environment, capture_output=True, timeout=180)


def _raylets() -> set[int]:
    """Process ids of the raylets (one per Ray node) running on this machine."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"raylet/raylet" in (entry / "cmdline").read_bytes():
                found.add(int(entry.name))
        except OSError:
            continue
    return found
