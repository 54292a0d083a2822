"""Probes of this machine, run once before any weights load: the things validation cannot know from the config alone
(is there a GPU, can the output directory take files, is the attention backend's package installed)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from fbgen.config import RunConfig
from fbgen.core.errors import BadInput
from fbgen.engine.loading import torchao_config


def preflight(config: RunConfig) -> None:
    """Everything but creating the output directory (that waits until the models are found: nothing is written
    for a run that cannot start)."""
    check_device(config)
    check_attention_backend(config)
    check_quantization(config)
    path = Path(config.output_dir)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise BadInput(f"{config.source}: key 'output_dir': {path} is not writable ({probe} is not a writable "
                       "directory)")  # fmt: skip


def check_device(config: RunConfig) -> None:
    value = config.device
    if not value.startswith("cuda"):
        return
    where = f"{config.source}: key 'device'"
    if not torch.cuda.is_available():
        raise BadInput(f"{where}: {value} was asked for but CUDA is not available on this machine; use device: cpu "
                       "or auto")  # fmt: skip
    index = int(value.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise BadInput(f"{where}: {value} does not exist; this machine has {torch.cuda.device_count()} CUDA device(s)")


def check_writable(output_dir: str, source: str) -> Path:
    """Create the output directory and prove it takes files (exit 2 now, not a lost render later)."""
    path = Path(output_dir)
    probe = path / f".fbgen-write-test.{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise BadInput(f"{source}: key 'output_dir': {path} is not writable ({e.strerror or e})") from None
    return path


def check_attention_backend(config: RunConfig) -> None:
    """diffusers' own requirement check for the backend (its package and version), without a model."""
    if not config.attention_backend:
        return
    from diffusers.models.attention_dispatch import AttentionBackendName, _check_attention_backend_requirements

    try:
        _check_attention_backend_requirements(AttentionBackendName(config.attention_backend))
    except (ImportError, RuntimeError, ValueError) as e:
        raise BadInput(f"{config.source}: key 'attention_backend': {str(e).splitlines()[0][:160]}") from None


def check_quantization(config: RunConfig) -> None:
    """What the quantization asks of this machine: torchao (or gguf) installed, and for float8 a CUDA GPU of compute
    capability 8.9 or newer (Ada, Hopper), for int4 a CUDA GPU: one line now, not a kernel error after loading."""
    import importlib.util

    kinds = set(config.quantization.values()) - {"auto"}  # auto is resolved against the plan, when it is known
    where = f"{config.source}: key 'quantization'"
    if kinds and importlib.util.find_spec("torchao") is None:
        raise BadInput(f"{where}: {', '.join(sorted(kinds))} needs torchao (pip install 'fbgen[quant]')")
    if any(ref.file for ref in config.models.values()) and importlib.util.find_spec("gguf") is None:
        raise BadInput(f"{config.source}: key 'models': a GGUF file needs gguf (pip install 'fbgen[quant]')")
    cuda = config.device.startswith("cuda") or (config.device == "auto" and torch.cuda.is_available())
    gpu = torch.device("cuda" if config.device == "auto" else config.device)
    for kind in sorted(kinds):
        if kind.startswith(("float8", "int4")) and not cuda:
            raise BadInput(f"{where}: {kind} runs on CUDA GPUs only; on this device use int8_weight_only or "
                           "int8_dynamic")  # fmt: skip
        if kind.startswith("float8") and torch.cuda.get_device_capability(gpu) < (8, 9):
            raise BadInput(f"{where}: {kind} needs a GPU with float8 (compute capability 8.9+: Ada, Hopper); this "
                           f"one is {torch.cuda.get_device_name(gpu)}; use int8_weight_only")  # fmt: skip
        try:
            torchao_config(kind)  # this torch and this torchao can build it
        except Exception as e:  # ImportError, TypeError, ValueError, version checks: all mean the same here
            raise BadInput(f"{where}: {kind} cannot run with torch {torch.__version__} and this torchao: "
                           f"{type(e).__name__}: {str(e).splitlines()[0][:160]}") from None  # fmt: skip
