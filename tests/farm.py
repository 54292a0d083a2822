"""Helpers for tests that run `fbgen batch` as farm workers: start them, wait for what they do, read what they wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

FBGEN = [sys.executable, "-m", "fbgen"]


def fbgen(*args: Any, timeout: float = 600, **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run([*FBGEN, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kwargs)


def start(*args: Any, **kwargs: Any) -> subprocess.Popen:
    return subprocess.Popen([*FBGEN, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)  # fmt: skip


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 300, interval: float = 0.1) -> Any:
    """Poll for an observable event; the timeout is a safety net for a hung test, never a speed assumption."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def write_prompts(path: Path, texts: list[str]) -> Path:
    path.write_text("\n".join(texts) + "\n")
    return path


def start_until_claimed(out: Path, *args: Any) -> tuple[subprocess.Popen, str]:
    """Start a worker (or a driver) and return once one of its workers holds an item: (process, claim name)."""
    proc = start(*args)
    return proc, wait_for(lambda: running_claim(out), "a worker to claim an item", timeout=600)


def claims(out: Path) -> dict[str, dict[str, Any]]:
    """Every claim file of a batch output dir: name → its content."""
    found = {}
    for path in sorted((out / ".fbgen" / "claims").glob("*")):
        try:
            found[path.name] = json.loads(path.read_bytes())
        except ValueError:
            continue
    return found


def running_claim(out: Path) -> str | None:
    return next((name for name, c in claims(out).items() if c.get("state") == "running"), None)


def journal_records(out: Path) -> list[dict[str, Any]]:
    """Every record any worker appended (not just the latest per item)."""
    records = []
    for path in sorted((out / ".fbgen" / "journal").glob("*.jsonl")):
        records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return records


def renders(out: Path) -> Counter:
    """How many times each item was rendered to the end, over all workers and reruns."""
    return Counter(r["id"] for r in journal_records(out) if r["status"] == "done")


def assert_all_done_once(out: Path, prompts: list[str]) -> None:
    from fbgen.outputs.checksums import file_sha256

    done = [r for r in journal_records(out) if r["status"] == "done"]
    assert sorted(r["prompt"] for r in done) == sorted(prompts)  # every item, each exactly once
    assert all(file_sha256(r["output"]) == r["sha256"] for r in done)
    assert len(list(out.glob("*.mp4"))) == len(prompts) and not list(out.glob(".*partial*"))
    status = fbgen("status", out, "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    assert json.loads(status.stdout)["done"] == len(prompts)


def env_with(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}
