"""Tiny Wan pairs built once per test session, saved in diffusers format and loaded through the real path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch the network
os.environ.setdefault("FBGEN_CACHE", "/tmp/fbgen-test-cache")
# one torch thread per test worker (and per fbgen process a test starts): xdist's workers x torch's default threads
# oversubscribe a small machine and make the suite several times slower under load
os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_pair(tmp_path_factory) -> dict[str, Path]:
    from fbgen.apps.tiny import build_tiny_wan

    return build_tiny_wan(tmp_path_factory.mktemp("models"))


@pytest.fixture
def write_config(tmp_path, tiny_pair):
    """Write a small, fast run config (overrides as keyword arguments) and return its path."""

    def write(**overrides) -> Path:
        data = {
            "family": "wan",
            "models": {"large": str(tiny_pair["large"]), "small": str(tiny_pair["small"])},
            "schedule": "LSL",
            "steps": 6,
            "height": 32,
            "width": 48,
            "num_frames": 5,
            "prompt": "a red cat runs left",
            "output_dir": str(tmp_path / "out"),
            "device": "cpu",
        }
        if "prompts" in overrides:
            data.pop("prompt")
        data.update(overrides)
        path = tmp_path / "run.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return write


@pytest.fixture(scope="session")
def tiny_ltx(tmp_path_factory) -> dict[str, Path]:
    from fbgen.apps.tiny import build_tiny_ltx

    return build_tiny_ltx(tmp_path_factory.mktemp("ltx-models"))


@pytest.fixture
def write_ltx_config(tmp_path, tiny_ltx):
    """A small LTX run config (overrides as keyword arguments)."""

    def write(**overrides) -> Path:
        data = {
            "family": "ltx",
            "models": {"large": str(tiny_ltx["large"]), "small": str(tiny_ltx["small"])},
            "schedule": "LSL",
            "steps": 5,
            "height": 64,
            "width": 64,
            "num_frames": 9,
            "guidance_scale": 3.0,
            "decode_timestep": 0.05,
            "decode_noise_scale": 0.025,
            "prompt": "a red cat runs left",
            "output_dir": str(tmp_path / "out"),
            "device": "cpu",
        }
        data.update(overrides)
        path = tmp_path / "ltx.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return write


@pytest.fixture(scope="session")
def wan22(tmp_path_factory) -> Path:
    """A tiny Wan 2.2 A14B layout: transformer (high noise) and transformer_2 (low noise), boundary_ratio 0.875."""
    from fbgen.apps.tiny import build_tiny_wan22

    return build_tiny_wan22(tmp_path_factory.mktemp("wan22") / "Wan2.2-T2V-tiny")
