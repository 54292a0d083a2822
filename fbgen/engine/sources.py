"""Model sources: hub id or local directory → a local diffusers directory plus what pins its content.

Hub ids resolve the way diffusers resolves them (the Hugging Face cache; `HF_HUB_OFFLINE=1` uses the cache only),
but only the subfolders a run needs are fetched, and only safetensors and JSON files. The snapshot's commit hash is
the revision; a local directory is pinned by a sha256 over its files (cached by size and mtime, since hashing a
14B checkpoint takes a while).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from fbgen.config import ModelRef, RunConfig
from fbgen.config.schema import experts
from fbgen.core.errors import ModelError
from fbgen.core.jsonfile import read_json_object
from fbgen.core.schedule import Plan
from fbgen.engine.planning import expert_notes
from fbgen.families import FAMILIES
from fbgen.families.base import FamilySpec, checkpoint_switch, component_class, model_index
from fbgen.families.shipped import shipped
from fbgen.outputs.checksums import file_sha256

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
WEIGHT_PATTERNS = ("*.json", "*.safetensors", "*.txt", "*.model")  # configs, weights, tokenizer files; never .bin


@dataclass(frozen=True)
class Source:
    """A resolved model: the local directory to load from and how to pin it in a manifest."""

    id: str
    path: Path
    revision: str | None = None  # hub commit hash
    sha256: str | None = None  # content hash of the used subfolders of a local directory
    shipped: bool = False  # fbgen's own architecture configs, used offline for planning (no weights)

    def pin(self) -> dict[str, str | None]:
        return {"id": self.id, "revision": self.revision, "sha256": self.sha256}


def resolve(ref: ModelRef, subfolders: list[str], what: str, weights: bool = True,
            config_only: frozenset[str] = frozenset()) -> Source:  # fmt: skip
    """Find (or fetch into the hub cache) the given subfolders of a model; `what` names it in errors.

    With `weights=False` only configs are fetched and nothing is hashed (`fbgen plan`); subfolders in `config_only`
    give only their config (a GGUF file brings the weights)."""
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
    patterns = [f"{sub}/{p}" for sub in subfolders for p in (("*.json",) if sub in config_only else kinds)]
    patterns += ["model_index.json", "scheduler/*.json"]
    try:
        path = Path(snapshot_download(ref.id, revision=ref.revision, allow_patterns=patterns))
    except Exception as e:  # hub errors come in many classes; all mean the same here
        known = shipped(ref.id)
        if not weights and known is not None and all((known / s / _config_name(s)).is_file() for s in subfolders):
            return Source(ref.id, known, None, None, shipped=True)  # a plan needs configs only
        offline = " (HF_HUB_OFFLINE is set: only the local cache is used)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise ModelError(f"{what}: cannot get {ref.id}{offline}: {type(e).__name__}: {str(e).splitlines()[0]}") from e
    missing = [s for s in subfolders if not (path / s / _config_name(s)).is_file()]
    if missing:
        raise ModelError(f"{what}: {ref.id} has no {', '.join(missing)} subfolder(s) in diffusers format")
    return Source(ref.id, path, path.name, None)


def _config_name(subfolder: str) -> str:
    return {"scheduler": "scheduler_config.json", "tokenizer": "tokenizer_config.json"}.get(subfolder, "config.json")


def read_config(source: Source, subfolder: str, required: tuple[str, ...] = ()) -> dict:
    """A component's config.json, read without touching its weights (pair checks happen before loading); a file
    that is not a JSON object, or lacks a key fbgen reads, is a model error (exit 3), not a traceback later."""
    data = read_json_object(source.path / subfolder / "config.json", f"{source.id}: {subfolder}")
    missing = [k for k in required if k not in data]
    if missing:
        raise ModelError(f"{source.id}: {subfolder}/config.json lacks {', '.join(missing)}; is it a "
                         f"{subfolder} of this model family?")  # fmt: skip
    return data


def read_scheduler_config(source: Source) -> dict | None:
    """The checkpoint's scheduler config, or None when it ships none."""
    path = source.path / "scheduler" / "scheduler_config.json"
    if not path.is_file():
        return None
    return read_json_object(path, f"{source.id}: scheduler")


def content_hash(root: Path, subfolders: list[str]) -> str:
    """sha256 over (relative path, file sha256) of every file in the subfolders."""
    files = [(file.relative_to(root).as_posix(), file) for sub in subfolders
             for file in sorted(p for p in (root / sub).rglob("*") if p.is_file())]  # fmt: skip
    hashes = file_hashes([file for _, file in files])
    outer = hashlib.sha256()
    for (name, _), digest in zip(files, hashes):
        outer.update(f"{name}\0{digest}\n".encode())
    return outer.hexdigest()


def file_hashes(files: list[Path]) -> list[str]:
    """Each file's sha256, memoised by path, size and mtime (hashing a 14B checkpoint takes a while)."""
    cache_path = Path(os.environ.get("FBGEN_CACHE", Path.home() / ".cache" / "fbgen")) / "sha256.json"
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    out, dirty = [], False
    for file in files:
        stat = file.stat()
        key = f"{file.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        if key not in cache:
            cache[key], dirty = file_sha256(file), True
        out.append(cache[key])
    if dirty:
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cache))
            os.replace(tmp, cache_path)
        except OSError:
            pass  # a read-only home only costs re-hashing next time
    return out


def gguf_file(ref: ModelRef, what: str, weights: bool = True) -> tuple[Path, str | None]:
    """A model's GGUF single file and its sha256 (memoised like directories; not hashed for a plan): missing is a
    model error."""
    path = Path(ref.file)
    if not path.is_file():
        raise ModelError(f"{what}: GGUF file {path} does not exist")
    return path, file_hashes([path])[0] if weights else None


@dataclass
class Sources:
    """Every model source a run uses, resolved, with the configs read and the component classes checked (no
    weights yet): what is missing or does not fit is refused here, before anything loads."""

    family: FamilySpec
    transformers: dict[str, Source]  # the models the schedule uses
    subfolders: dict[str, str]  # letter → its transformer's subfolder
    text: Source
    vae: Source
    configs: dict[str, dict]  # transformer configs of every declared model that can be found (for large-only FLOPs)
    vae_config: dict
    scheduler_config: dict | None  # the large model's checkpoint scheduler config
    experts: tuple[str, str] | None = None  # letters of a two-expert checkpoint's (high-noise, low-noise) models
    expert_switch: float | None = None  # that checkpoint's boundary_ratio (WanPipeline switches there)
    files: dict[str, tuple[Path, str | None]] = field(default_factory=dict)  # letter → its GGUF file, sha256

    @classmethod
    def open(cls, config: RunConfig, weights: bool = True) -> Sources:
        family = FAMILIES[config.family]
        used = sorted(set(config.schedule), key=list(config.models).index)
        large = config.models[config.large]
        text_ref, vae_ref = config.text_encoder or large, config.vae or large
        subfolders = {m: ref.subfolder or family.transformer for m, ref in config.models.items()}
        wanted: dict[tuple[str, str | None], list[str]] = {}
        config_only: dict[tuple[str, str | None], set[str]] = {}  # GGUF letters: the repo gives the config only
        for letter in used:
            where = _where(config.models[letter])
            wanted.setdefault(where, []).append(subfolders[letter])
            if config.models[letter].file:
                config_only.setdefault(where, set()).add(subfolders[letter])
        wanted.setdefault(_where(text_ref), []).extend(family.text_subfolders)
        wanted.setdefault(_where(vae_ref), []).extend(family.vae_subfolders)
        resolved = {}
        for where, subs in wanted.items():
            names = [m for m in used if _where(config.models[m]) == where] or ["text encoder/VAE"]
            ref = ModelRef(*where)
            weighted = {subfolders[m] for m in used if _where(config.models[m]) == where and not config.models[m].file}
            resolved[where] = resolve(ref, sorted(set(subs)), f"{config.source}: models.{'/'.join(names)}",
                                      weights=weights,
                                      config_only=frozenset(config_only.get(where, set()) - weighted))  # fmt: skip
        transformers = {m: resolved[_where(config.models[m])] for m in used}
        required = tuple(dict.fromkeys(family.pair_keys + family.flops_keys))
        configs = {m: read_config(src, subfolders[m], required) for m, src in transformers.items()}
        for letter in set(config.models) - set(used):  # e.g. L of an SSS run: its config prices "large-only"
            try:
                src = resolve(config.models[letter], [subfolders[letter]], f"models.{letter}", weights=False)
                configs[letter] = read_config(src, subfolders[letter], required)
            except ModelError:
                pass  # not needed to run; FLOPs then compare against the largest model used
        check_pair(configs, family.pair_keys, {m: config.models[m].id for m in configs})
        text, vae = resolved[_where(text_ref)], resolved[_where(vae_ref)]
        vae_config = read_config(vae, "vae")
        check_vaes(config, used, vae_ref, vae_config, family.vae_keys)
        check_latents(family, configs, vae_config, {m: config.models[m].id for m in configs}, vae.id)
        for letter, source in transformers.items():
            check_pipeline(source, config.models[letter].id, letter)
        for component, source in (("text_encoder", text), ("tokenizer", text), ("vae", vae)):
            component_class(family, source.path, component)  # a class fbgen would not load is refused now
        for letter, source in transformers.items():
            component_class(family, source.path, subfolders[letter], "transformer")
        scheduler = read_scheduler_config(transformers[used[0]] if config.large not in used else
                                          transformers[config.large])  # fmt: skip
        files = {m: gguf_file(config.models[m], f"{config.source}: models.{m}", weights) for m in used
                 if config.models[m].file}  # a plan weighs the file too  # fmt: skip
        pair, switch = experts(config.models), None
        if pair:
            ref = config.models[pair[0]]
            home = resolved.get(_where(ref)) or resolve(ref, [], f"models.{pair[0]}", weights=False)
            switch = checkpoint_switch(home.path)
        return cls(family, transformers, {m: subfolders[m] for m in used}, text, vae, configs, vae_config, scheduler,
                   pair, switch, files)  # fmt: skip

    def offline_notes(self) -> list[str]:
        """Which sources are fbgen's shipped architecture configs (the hub could not be reached): said in a plan."""
        ids = sorted({s.id for s in (*self.transformers.values(), self.text, self.vae) if s.shipped})
        return [f"offline: planned from fbgen's shipped architecture configs of {i} (the hub and its cache had "
                f"none; no weights are needed to plan)" for i in ids]  # fmt: skip

    def expert_notes(self, plan: Plan) -> list[str]:
        """Steps where a two-expert checkpoint's model runs outside its noise range (see `expert_notes`)."""
        train = (self.scheduler_config or {}).get("num_train_timesteps", 1000)
        return expert_notes(plan, self.experts, self.expert_switch, train)


def _where(ref: ModelRef) -> tuple[str, str | None]:
    """One download per repository and revision, whichever letters and subfolders it supplies."""
    return ref.id, ref.revision


def check_vaes(config: RunConfig, used: list[str], vae_ref: ModelRef, vae_config: dict, keys: tuple[str, ...]) -> None:
    """A model that ships its own VAE must ship the shared one: its latents are decoded by it (e.g. LTX 0.9.1 vs
    0.9.5+ VAEs differ). Only config.json files are read; a model without a findable VAE config is not judged."""
    for letter in used:
        ref = config.models[letter]
        if _where(ref) == _where(vae_ref):
            continue
        try:
            own = read_config(resolve(ref, ["vae"], f"models.{letter}", weights=False), "vae")
        except ModelError:
            continue
        for key in keys:
            if own.get(key) != vae_config.get(key):
                raise ModelError(f"models.{letter} ({ref.id}) was trained with another VAE than the shared one "
                                 f"({vae_ref.id}): vae {key} is {own.get(key)} vs {vae_config.get(key)}")  # fmt: skip


def check_latents(family: FamilySpec, configs: dict[str, dict], vae_config: dict, ids: dict[str, str],
                  vae_id: str) -> None:  # fmt: skip
    """A text-to-video transformer takes exactly the VAE's latent channels: an image-to-video model (Wan I2V: 36,
    the latent plus a conditioning image's) or one made for another VAE (Wan 2.2 TI2V-5B: 48) cannot denoise them."""
    if family.latent_channels is None:
        return
    ours, theirs = family.latent_channels
    if theirs not in vae_config:
        return  # diffusers would take the class default; nothing here to judge by
    for letter, cfg in configs.items():
        if cfg.get(ours) != vae_config[theirs]:
            raise ModelError(f"models.{letter} ({ids[letter]}) takes {ours} {cfg.get(ours)} but the VAE ({vae_id}) "
                             f"makes {vae_config[theirs]}-channel latents: an image-to-video model or one of "
                             f"another VAE; fbgen renders text-to-video with one shared VAE")  # fmt: skip


def check_pipeline(source: Source, ref_id: str, letter: str) -> None:
    """Pipeline settings fbgen's loop does not reproduce are refused rather than silently ignored: Wan 2.2 TI2V-5B's
    per-token timesteps (`expand_timesteps`)."""
    if model_index(source.path).get("expand_timesteps"):
        raise ModelError(f"models.{letter} ({ref_id}): model_index.json sets expand_timesteps (Wan 2.2 TI2V-5B), "
                         f"which fbgen does not run; use the A14B experts or Wan 2.1 models")  # fmt: skip


def check_pair(configs: dict[str, dict], keys: tuple[str, ...], ids: dict[str, str]) -> None:
    """Models of one run must agree on everything that defines the latent space and the conditioning."""
    first = next(iter(configs))
    for letter, cfg in configs.items():
        for key in keys:
            a, b = configs[first].get(key), cfg.get(key)
            if a != b:
                raise ModelError(
                    f"models {first} ({ids[first]}) and {letter} ({ids[letter]}) cannot share a latent space: "
                    f"{key} is {a} vs {b}"
                )
