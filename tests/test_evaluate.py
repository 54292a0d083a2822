"""`fbgen eval`: fidelity of existing videos against references, paired by file name."""

import json
import subprocess
import sys

import numpy as np
import pytest

from fbgen.apps.evaluate import evaluate, pairs
from fbgen.core.errors import BadInput
from fbgen.outputs.video import write_mp4


def clip(seed, noise=0):
    rng = np.random.default_rng(seed)
    frames = np.repeat(rng.integers(0, 256, (1, 32, 48, 3)), 5, axis=0).astype(int)
    return (
        np.clip(frames + rng.normal(0, noise, frames.shape), 0, 255).astype(np.uint8)
        if noise
        else frames.astype(np.uint8)
    )


def test_pairs_by_name_and_scores(tmp_path):
    videos, refs = tmp_path / "lsl", tmp_path / "lll"
    videos.mkdir()
    refs.mkdir()
    for name, seed in (("a.mp4", 1), ("b.mp4", 2)):
        write_mp4(clip(seed), refs / name, 8)
        write_mp4(clip(seed), videos / name, 8)
    write_mp4(clip(3), videos / "unmatched.mp4", 8)
    assert [p[0].name for p in pairs(videos, refs)] == ["a.mp4", "b.mp4"]
    result = evaluate(videos, refs)
    assert len(result["items"]) == 2 and result["mean"]["psnr"] == 100.0 and result["mean"]["ssim"] == pytest.approx(1)
    write_mp4(clip(1, noise=20), videos / "a.mp4", 8)
    worse = evaluate(videos / "a.mp4", refs / "a.mp4")
    assert 10 < worse["mean"]["psnr"] < 40 and worse["mean"]["ssim"] < 0.99


def test_bad_inputs(tmp_path):
    write_mp4(clip(1), tmp_path / "a.mp4", 8)
    write_mp4(clip(2)[:3], tmp_path / "short.mp4", 8)
    with pytest.raises(BadInput, match="cannot be compared"):
        evaluate(tmp_path / "a.mp4", tmp_path / "short.mp4")
    with pytest.raises(BadInput, match="no such file"):
        pairs(tmp_path / "missing", tmp_path)
    (tmp_path / "refs").mkdir()
    with pytest.raises(BadInput, match="prompt and seed"):
        pairs(tmp_path, tmp_path / "refs")


def test_cli_eval(tmp_path):
    write_mp4(clip(1), tmp_path / "v.mp4", 8)
    write_mp4(clip(1, noise=10), tmp_path / "r.mp4", 8)
    cmd = [sys.executable, "-m", "fbgen", "eval", str(tmp_path / "v.mp4"), "--reference", str(tmp_path / "r.mp4")]
    result = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 20 < json.loads(result.stdout)["mean"]["psnr"] < 60
    bad = subprocess.run([*cmd[:-1], str(tmp_path / "nope.mp4")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no such file" in bad.stderr
