import numpy as np
import pytest

from fbgen.core.errors import WriteError
from fbgen.outputs import video
from fbgen.outputs.naming import output_name, slugify


def test_mp4_roundtrip_h264_yuv420p(tmp_path):
    frames = np.zeros((9, 32, 48, 3), np.uint8)
    frames[:, :, :24] = (200, 30, 30)
    path = video.write_mp4(frames, tmp_path / "v.mp4", fps=8)
    decoded, meta = video.read_mp4(path)
    assert decoded.shape == frames.shape and meta["fps"] == 8
    assert meta["codec"].startswith("h264") and meta["pix_fmt"].startswith("yuv420p")
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 4


def test_odd_sizes_are_padded_to_even(tmp_path):
    decoded, _ = video.read_mp4(video.write_mp4(np.zeros((2, 33, 47, 3), np.uint8), tmp_path / "odd.mp4", 4))
    assert decoded.shape == (2, 34, 48, 3)


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    calls = []

    def frame_then_interrupt(frame):
        calls.append(1)
        if len(calls) == 3:  # two frames are in the temp file when Ctrl-C arrives
            raise KeyboardInterrupt
        return frame

    monkeypatch.setattr(video.np, "ascontiguousarray", frame_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        video.write_mp4(np.zeros((4, 16, 16, 3), np.uint8), tmp_path / "v.mp4", fps=8)
    assert len(calls) == 3 and list(tmp_path.iterdir()) == []


def test_prompt_text_never_becomes_a_path():
    evil = "../../etc/passwd; rm -rf / && echo $HOME\n" + "x" * 500
    slug = slugify(evil)
    assert "/" not in slug and "." not in slug and len(slug) <= 49
    name = output_name("{slug}-{id}-{seed}-{schedule}", prompt=evil, seed=1, schedule="LSL-20-40-n50", steps=50,
                       index=0, id="a1b2")  # fmt: skip
    assert "/" not in name and not name.startswith(".") and len(name) <= 180 and "-a1b2-1-LSL" in name
    assert slugify("日本語") == "prompt"  # no words: the id, not the slug, makes the name unique


def test_a_failing_encoder_leaves_no_file_and_says_why(tmp_path, monkeypatch):
    with pytest.raises(WriteError, match="ffmpeg exited with"):  # ffmpeg rejects the option and exits non-zero
        video.write_mp4(np.zeros((3, 16, 16, 3), np.uint8), tmp_path / "v.mp4", fps=8, crf="nonsense")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_decodes_short_is_not_renamed(tmp_path, monkeypatch):
    monkeypatch.setattr(video, "_decoded_frames", lambda path: 2)  # as a truncated file would decode
    with pytest.raises(WriteError, match="decodes to 2 of 3 frames"):
        video.write_mp4(np.zeros((3, 16, 16, 3), np.uint8), tmp_path / "v.mp4", fps=8)
    assert list(tmp_path.iterdir()) == []
