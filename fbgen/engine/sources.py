"""Model sources: hub id or local directory → a local diffusers directory plus what pins its content.

Hub ids resolve the way diffusers resolves them (the Hugging Face cache; `HF_HUB_OFFLINE=1` uses the cache only),
but only the subfolders a run needs are fetched, and only safetensors and JSON files. The snapshot's commit hash is
the revision; a local directory is pinned by a sha256 over its files (cached by size and mtime, since hashing a
14B checkpoint takes a while).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from fbgen.config.schema import ModelRef
from fbgen.core.errors import ModelError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
WEIGHT_PATTERNS = ("*.json", "*.safetensors", "*.txt", "*.model")  # configs, weights, tokenizer files; never .bin


@dataclass(frozen=True)
class Source:
    """A resolved model: the local directory to load from and how to pin it in a manifest."""

    id: str
    path: Path
    revision: str | None = None  # hub commit hash
    sha256: str | None = None  # content hash of the used subfolders of a local directory

    def pin(self) -> dict[str, str | None]:
        return {"id": self.id, "revision": self.revision, "sha256": self.sha256}


def resolve(ref: ModelRef, subfolders: list[str], what: str, weights: bool = True) -> Source:
    """Find (or fetch into the hub cache) the given subfolders of a model; `what` names it in errors.

    With `weights=False` only configs are fetched and nothing is hashed (`fbgen plan`)."""
    local = Path(ref.id).expanduser()
    if local.is_dir():
        missing = [s for s in subfolders if not (local / s / _config_name(s)).is_file()]
        if missing:
            raise ModelError(f"{what}: {local} has no {', '.join(f'{m}/' for m in missing)} (a diffusers directory "
                             f"with {', '.join(subfolders)} subfolders is expected)")  # fmt: skip
        return Source(ref.id, local.resolve(), None, content_hash(local, subfolders) if weights else None)
    if not HUB_ID.match(ref.id):
        raise ModelError(f"{what}: {ref.id!r} is neither a local directory nor a hub id like 'org/name'")
    from huggingface_hub import snapshot_download

    kinds = WEIGHT_PATTERNS if weights else ("*.json",)
    patterns = [f"{sub}/{p}" for sub in subfolders for p in kinds] + ["model_index.json"]
    try:
        path = Path(snapshot_download(ref.id, revision=ref.revision, allow_patterns=patterns))
    except Exception as e:  # hub errors come in many classes; all mean the same here
        offline = " (HF_HUB_OFFLINE is set: only the local cache is used)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise ModelError(f"{what}: cannot get {ref.id}{offline}: {type(e).__name__}: {str(e).splitlines()[0]}") from e
    missing = [s for s in subfolders if not (path / s / _config_name(s)).is_file()]
    if missing:
        raise ModelError(f"{what}: {ref.id} has no {', '.join(missing)} subfolder(s) in diffusers format")
    return Source(ref.id, path, path.name, None)


def _config_name(subfolder: str) -> str:
    return {"scheduler": "scheduler_config.json", "tokenizer": "tokenizer_config.json"}.get(subfolder, "config.json")


def read_config(source: Source, subfolder: str) -> dict:
    """A component's config.json, read without touching its weights (pair checks happen before loading)."""
    path = source.path / subfolder / "config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"{source.id}: cannot read {subfolder}/config.json ({e})") from None


def content_hash(root: Path, subfolders: list[str]) -> str:
    """sha256 over (relative path, file sha256) of every file in the subfolders, memoised by size and mtime."""
    cache_path = Path(os.environ.get("FBGEN_CACHE", Path.home() / ".cache" / "fbgen")) / "sha256.json"
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    outer = hashlib.sha256()
    dirty = False
    for sub in subfolders:
        for file in sorted(p for p in (root / sub).rglob("*") if p.is_file()):
            stat = file.stat()
            key = f"{file.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
            if key not in cache:
                cache[key], dirty = file_sha256(file), True
            outer.update(f"{file.relative_to(root).as_posix()}\0{cache[key]}\n".encode())
    if dirty:
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cache))
            os.replace(tmp, cache_path)
        except OSError:
            pass  # a read-only home only costs re-hashing next time
    return outer.hexdigest()


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def parameter_count(source: Source, subfolder: str) -> int | None:
    """Parameters of a component from its safetensors headers (no tensor is read); None if weights are absent."""
    from safetensors import safe_open

    files = sorted((source.path / subfolder).glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a dict
                total += math.prod(f.get_slice(key).get_shape())
    return total
