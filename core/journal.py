"""A run's journal: its account written as it goes, one JSON line per event, appended (and
synced where a power cut must not lose it), so that a run killed before it writes its manifest
(kill -9, the out-of-memory killer, a power cut) leaves a record of what it did.

A run on one machine keeps `.journal.jsonl` in its output folder while it runs: first the run
(its manifest's name, settings, versions and inputs), then each output's name before the output
is written, and each file's entry once it is done; its manifest written, the journal goes
(`run_folder.recover` makes a killed run's into its manifest). A cluster run keeps `journal.jsonl`,
which stays: the name it gave its manifest, each output's name, and each file done with the
key of its settings (`core.cluster`).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from .store import NoRoom

RUN_JOURNAL = ".journal.jsonl"
CLUSTER_JOURNAL = "journal.jsonl"
JOURNALS = (RUN_JOURNAL, CLUSTER_JOURNAL)


class Journal:
    """A run's account, one JSON line per event, appended (`append`) and read back whole."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self.run: dict | None = None  # a run on one machine: what it set out to do
        self.names: dict[str, str] = {}
        self.done: dict[str, dict] = {}
        self.manifest: str | None = None  # a cluster run's manifest's name, given by its first run
        if path.exists():
            text = path.read_text()
            for line in text.splitlines():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a crash
                if "assign" in event:
                    self.names[event["assign"]] = event["name"]
                elif "run" in event:
                    self.run = event["run"]
                elif "manifest" in event:
                    self.manifest = event["manifest"]
                elif "done" in event:
                    self.done[event["done"]] = event
            if text and not text.endswith("\n"):  # the next event on a line of its own, not after the cut one
                with open(path, "a") as handle:
                    handle.write("\n")

    def append(self, event: dict, sync: bool = True) -> None:
        """The event on a line of its own (from any thread), on the disk when this returns if
        `sync`, else once the system writes it (a killed process's lines are kept, a power cut's
        may not be); `NoRoom` when the disk refuses it (the line it cut short is passed over when
        read)."""
        line = json.dumps(event) + "\n"
        try:
            with self._lock, open(self.path, "a") as handle:
                handle.write(line)
                handle.flush()
                if sync:
                    os.fsync(handle.fileno())
        except OSError as exc:
            raise NoRoom.of(exc) from exc

    def finished(self, path: str, key: str, out_dir: Path) -> dict | None:
        """The entry of `path` if a cluster run did it with these settings (`key`) and its output
        is still there (a worker then checks both files' SHA-256 against it before it counts as
        done)."""
        event = self.done.get(path)
        if not event or event.get("settings_key") != key:
            return None
        entry = event["entry"]
        if "error" in entry or not (out_dir / entry["output"]).exists():
            return None
        return entry


def is_journal(name: str, head: bytes) -> bool:
    """Whether a file named `name` whose first bytes are `head` is a run's journal."""
    return (name == RUN_JOURNAL and head.startswith(b'{"run": ')) or \
        (name == CLUSTER_JOURNAL and head.startswith(b'{"manifest": '))
