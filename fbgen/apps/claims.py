"""Leases on batch items in a shared output dir, so any number of workers render every item exactly once.

NFS-safe by construction: the only primitives are `O_CREAT|O_EXCL` (atomic on the server) and reading a small file
after opening it (close-to-open consistency). No `flock`, no clocks compared across hosts.

`<out>/.fbgen/claims/<item id>.<generation>` holds `{"worker", "run", "host", "pid", "beat", "state"}`,
rewritten in place (fixed width, no truncation) by its holder. Taking an item is creating the next generation with
`O_EXCL`, so two workers can never both win it. A claim is alive while its content keeps changing: the holder's
heartbeat thread bumps `beat` every lease/8. A watcher that sees the same bytes for a whole lease on its own
monotonic clock takes the item over (generation + 1); the old holder, if it was only stalled, sees the newer
generation before it records the item and leaves the record to the new holder.

States: `running` (held), `done`, `failed`, `released` (its worker was interrupted: take it at once).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HOST = socket.gethostname()
LEASE_S = 120.0  # long enough for NFS attribute caches (≤ 60 s) to show a heartbeat; a dead worker's item waits this
WIDTH = 512  # claim files are rewritten in place at a fixed width: a reader never sees an empty file


@dataclass(frozen=True)
class Seen:
    """A claim as another worker reads it."""

    item_id: str
    gen: int
    worker: str
    run: str
    state: str
    raw: bytes


class Claim:
    """A claim this worker holds. `renew` and `finish` rewrite it; `superseded` says another worker took it over."""

    def __init__(self, path: Path, item_id: str, gen: int, worker: str, run: str):
        self.path, self.item_id, self.gen, self.worker, self.run = path, item_id, gen, worker, run
        self.beat, self.state = 0, "running"
        self._lock = threading.Lock()

    def _write(self) -> None:
        body = json.dumps({"worker": self.worker, "run": self.run, "host": HOST, "pid": os.getpid(), "beat": self.beat,
                           "state": self.state})  # fmt: skip
        data = body.encode().ljust(WIDTH)
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.pwrite(fd, data, 0)
            os.fsync(fd)
        finally:
            os.close(fd)

    @property
    def superseded(self) -> bool:
        return self.path.with_name(f"{self.item_id}.{self.gen + 1}").exists()

    def renew(self) -> None:
        with self._lock:
            if self.state == "running":
                self.beat += 1
                self._write()

    def finish(self, state: str) -> None:
        """`done`, `failed` or `released`; a superseded claim is left to its new holder."""
        with self._lock:
            self.state = state
            if not self.superseded:
                self._write()


class Claims:
    """The claims directory of one batch output dir, seen by one worker."""

    def __init__(self, state_dir: Path, worker: str = "", run: str = "", lease_s: float = LEASE_S, create: bool = True):
        self.dir = state_dir / "claims"
        if create:
            self.dir.mkdir(parents=True, exist_ok=True)
        self.worker, self.run, self.lease_s = worker, run, lease_s
        self.held: Claim | None = None  # the claim this worker took last (see `release_held`)
        self._first_seen: dict[str, tuple[int, bytes, float]] = {}  # item → (gen, bytes, monotonic time first seen)

    def generations(self) -> dict[str, int]:
        """The newest generation of every claimed item (one directory listing)."""
        newest: dict[str, int] = {}
        for name in os.listdir(self.dir) if self.dir.is_dir() else []:
            item_id, _, gen = name.rpartition(".")
            if gen.isdigit():
                newest[item_id] = max(newest.get(item_id, -1), int(gen))
        return newest

    def read(self, item_id: str, gen: int) -> Seen:
        try:
            raw = (self.dir / f"{item_id}.{gen}").read_bytes()
        except FileNotFoundError:
            raw = b""
        try:
            data = json.loads(raw)
        except ValueError:  # being created this instant: treat as a running claim whose bytes change
            data = {}
        return Seen(item_id, gen, str(data.get("worker", "")), str(data.get("run", "")),
                    str(data.get("state", "running")), raw)  # fmt: skip

    def take(self, item_id: str, gen: int) -> Claim | None:
        """Create generation `gen` of the item's claim; None if another worker got there first."""
        path = self.dir / f"{item_id}.{gen}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return None
        claim = Claim(path, item_id, gen, self.worker, self.run)
        self.held = claim  # from here on an interrupt releases it (`release_held`), even mid-write
        os.close(fd)
        claim._write()
        return claim

    def release_held(self) -> None:
        """On an interrupt: the item this worker took and has not settled goes back to the queue at once. Covers a
        signal that lands between taking an item and the render that would release it."""
        if self.held is not None and self.held.state == "running":
            self.held.finish("released")

    def observe(self, seen: Seen) -> str:
        """`alive` when a running claim's bytes changed since this worker last looked (its holder beats), `stale` when
        they stayed the same for a whole lease of this worker's own clock, else `waiting`."""
        now = time.monotonic()
        first = self._first_seen.get(seen.item_id)
        if first is None or first[0] != seen.gen:
            self._first_seen[seen.item_id] = (seen.gen, seen.raw, now)
            return "waiting"
        if first[1] != seen.raw:
            self._first_seen[seen.item_id] = (seen.gen, seen.raw, now)
            return "alive"
        return "stale" if now - first[2] >= self.lease_s else "waiting"


class Heartbeat:
    """Renews the claim this worker holds from a thread, so a worker busy in a long kernel still counts as alive."""

    def __init__(self, lease_s: float):
        self.interval = max(lease_s / 8, 0.05)
        self.claim: Claim | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fbgen-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            claim = self.claim
            if claim is not None:
                with contextlib.suppress(OSError):  # a storage hiccup: the lease may lapse, the render reports errors
                    claim.renew()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
