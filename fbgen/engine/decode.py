"""Saved final latents → a video, later and with the VAE alone (`fbgen decode`): the way out of a decode that ran out
of memory after a long render, or of a render that only asked for latents."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from fbgen.config import ModelRef
from fbgen.core.errors import BadInput, ModelError
from fbgen.engine.engine import resolve_device, resolve_dtype
from fbgen.engine.sources import resolve
from fbgen.families import FAMILIES
from fbgen.families.base import Video
from fbgen.outputs.frames import write_png_frames
from fbgen.outputs.latents import SUFFIX, read_latents
from fbgen.outputs.video import upscale, write_mp4


def decode_file(path: str | os.PathLike, out: str | os.PathLike | None = None, formats: tuple[str, ...] = ("mp4",),
                device: str = "auto") -> dict[str, Path]:  # fmt: skip
    """Decode a `<name>.latents.safetensors` written by a render into `<name>.mp4` (and/or `<name>-frames/`) beside
    it or in `out`; existing finished files are never overwritten."""
    path = Path(path)
    try:
        tensors, meta = read_latents(path)
    except Exception as e:  # safetensors raises its own classes for a file that is not one
        raise BadInput(f"{path}: not a latents file written by fbgen ({str(e).splitlines()[0][:100]})") from None
    if "latents" not in tensors or meta.get("family") not in FAMILIES:
        raise BadInput(f"{path}: not a latents file written by fbgen (no latents or family in it)")
    family = FAMILIES[meta["family"]]
    vae = meta["vae"]
    ref = ModelRef(vae["id"] if Path(vae["id"]).is_dir() else vae["hub_id"], vae.get("revision"))
    source = resolve(ref, list(family.vae_subfolders), f"{path}: vae")
    device_ = resolve_device(device)
    adapter = family.adapter()
    try:
        loaded = adapter.load({}, None, source.path, str(device_), resolve_dtype(meta.get("dtype", "auto"), device_))
    except (OSError, ValueError, RuntimeError) as e:
        raise ModelError(f"{path}: cannot load the VAE from {ref.id}: {str(e).splitlines()[0]}") from e
    video = Video(meta["height"], meta["width"], meta["num_frames"], meta["fps"], meta["max_sequence_length"],
                  meta.get("options") or {})  # fmt: skip
    generator = torch.Generator("cpu")
    generator.set_state(tensors["generator_state"])
    frames = upscale(loaded.decode(tensors["latents"].to(device_), video, generator), family.view_scale)
    target = Path(out) if out else path.parent
    target.mkdir(parents=True, exist_ok=True)
    stem = path.name.removesuffix(SUFFIX)
    written = {}
    for kind in formats:
        final = target / (f"{stem}.mp4" if kind == "mp4" else f"{stem}-frames")
        if final.exists():
            raise BadInput(f"{final} exists; fbgen never overwrites a finished video (move it away or pass --out)")
        written[kind] = (write_mp4(frames, final, meta["fps"], meta.get("crf", 10)) if kind == "mp4"
                         else write_png_frames(frames, final))  # fmt: skip
    return written
