"""Batch: prompt files, stable ids/seeds, shards, resume, failure isolation, kill-and-resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fbgen.batch import in_shard, item_seed, parse_shard, read_prompts
from fbgen.errors import BadInput
from fbgen.sources import file_sha256
from fbgen.workers import physical_device, sub_shards, worst


def test_txt_prompts_skip_comments_and_ids_survive_inserted_lines(tmp_path):
    a = tmp_path / "a.txt"
    a.write_text("# comment\none\n\ntwo\none\n")
    b = tmp_path / "b.txt"
    b.write_text("zero\none\ntwo\none\n")
    first, second = read_prompts(a), read_prompts(b)
    assert [i.prompt for i in first] == ["one", "two", "one"] and [i.line for i in first] == [2, 4, 5]
    assert len({i.id for i in first}) == 3  # a repeated prompt is a distinct item
    assert [i.id for i in first] == [i.id for i in second[1:]]
    assert item_seed(0, first[0].id) == item_seed(0, second[1].id) != item_seed(1, first[0].id)


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"prompt": "a"}\n{"prompt": 3}\n', ":2: expected an object with a non-empty 'prompt'"),
        ('{"prompt": "a"}\nnot json\n', ":2: not valid JSON"),
        ('{"prompt": "a", "seed": "x"}\n', ":1: 'seed' must be an integer"),
        ('{"prompt": "a", "id": "k"}\n{"prompt": "b", "id": "k"}\n', ":2: id 'k' is used twice"),
        ("# only a comment\n", "no prompts"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "p.jsonl"
    path.write_text(text)
    with pytest.raises(BadInput, match=message.replace("(", r"\(")):
        read_prompts(path)


def test_shards_partition_items_and_read_slurm_and_torchrun():
    ids = [f"item{i}" for i in range(200)]
    owners = [[k for k in range(1, 5) if in_shard(i, (k, 4))] for i in ids]
    assert all(len(o) == 1 for o in owners) and {o[0] for o in owners} == {1, 2, 3, 4}
    assert parse_shard("2/4", {}) == (2, 4)
    assert parse_shard(None, {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "8"}) == (1, 8)
    assert parse_shard(None, {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "3",
                              "SLURM_ARRAY_TASK_MIN": "1"}) == (3, 3)  # fmt: skip
    assert parse_shard(None, {"RANK": "1", "WORLD_SIZE": "2"}) == (2, 2)
    assert parse_shard(None, {}) == (1, 1)
    with pytest.raises(BadInput, match="--shard"):
        parse_shard("5/4", {})


def batch(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "fbgen", "batch", *map(str, args)], capture_output=True,
                          text=True, timeout=300, **kwargs)  # fmt: skip


def manifest_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def shard_manifest_lines(out, n):
    return [r for k in range(1, n + 1) for r in manifest_lines(out / f"manifest-{k}-of-{n}.jsonl")]


def test_resume_failure_isolation_and_retry(write_config, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "a red cat"}\n{"prompt": "a blue dog", "num_frames": 6}\n'
                       '{"prompt": "a green bird", "seed": 5}\n')  # fmt: skip
    config = write_config(steps=3)
    first = batch(prompts, "--config", config, "--json")
    assert first.returncode == 1, first.stderr  # one item failed, the others are done
    summary = json.loads(first.stdout)
    assert (summary["done"], summary["failed"], summary["skipped"]) == (2, 1, 0)
    records = manifest_lines(tmp_path / "out" / "manifest.jsonl")
    failed = [r for r in records if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["line"] == 2 and "4k+1 frames" in failed[0]["error"]
    for r in records:
        if r["status"] == "done":
            assert file_sha256(r["output"]) == r["sha256"]
    assert [r["seed"] for r in records if r["prompt"] == "a green bird"] == [5]
    done_flops = [r["flops"] for r in records if r["status"] == "done"]
    assert summary["flops"] == summary["executed_flops"] == sum(f["total"] for f in done_flops)  # no cache hook

    again = json.loads(batch(prompts, "--config", config, "--json").stdout)
    assert (again["done"], again["skipped"], again["exit_code"]) == (0, 3, 0)
    retry = batch(prompts, "--config", config, "--json", "--retry-failed")
    assert retry.returncode == 1 and json.loads(retry.stdout)["failed"] == 1

    # a done MP4 that no longer matches its manifest is redone
    done = [r for r in records if r["status"] == "done"][0]
    with open(done["output"], "ab") as f:
        f.write(b"corrupt")
    redo = json.loads(batch(prompts, "--config", config, "--json").stdout)
    assert redo["done"] == 1


def test_shards_write_their_own_manifests_concurrently(write_config, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n".join(f"a red ball number {i}" for i in range(6)) + "\n")
    config = write_config(steps=2)
    procs = [subprocess.Popen([sys.executable, "-m", "fbgen", "batch", str(prompts), "--config", str(config),
                               "--shard", f"{k}/2", "--quiet"]) for k in (1, 2)]  # fmt: skip
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    out = tmp_path / "out"
    lines = shard_manifest_lines(out, 2)
    assert sorted(r["prompt"] for r in lines) == sorted(f"a red ball number {i}" for i in range(6))
    unsharded = json.loads(batch(prompts, "--config", config, "--json").stdout)
    assert unsharded["skipped"] == 6 and unsharded["done"] == 0  # another layout resumes from both manifests


def test_sigkill_then_rerun_finishes_every_item_exactly_once(write_config, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n".join(f"a white bird number {i}" for i in range(6)) + "\n")
    config = write_config(steps=40, height=64, width=64)
    out = tmp_path / "out"
    for delay in (2.5, 1.0):
        proc = subprocess.Popen([sys.executable, "-m", "fbgen", "batch", str(prompts), "--config", str(config)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
        for line in proc.stdout:  # wait until models are loaded and the first video has started
            if "[1/" in line:
                break
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = batch(prompts, "--config", config, "--json")
    assert final.returncode == 0, final.stderr
    records = [r for r in manifest_lines(out / "manifest.jsonl") if r["status"] == "done"]
    assert sorted(r["prompt"] for r in records) == sorted(f"a white bird number {i}" for i in range(6))
    assert len({r["id"] for r in records}) == 6  # exactly once
    assert all(file_sha256(r["output"]) == r["sha256"] for r in records)
    assert not list(out.glob(".*partial*")) and len(list(out.glob("*.mp4"))) == 6


def test_sub_shards_partition_every_layout():
    ids = [f"item-{i}" for i in range(200)]
    for n in (1, 3):
        for workers in (1, 2, 4):
            owners = [[s for k in range(1, n + 1) for s in sub_shards((k, n), workers) if in_shard(i, s)] for i in ids]
            assert all(len(o) == 1 for o in owners)  # every item in exactly one worker's shard
    assert worst([0, 1, 130, 3]) == 130 and worst([0, 2, 1]) == 2 and worst([0, -9]) == 1 and worst([0, 0]) == 0


def test_device_indices_count_the_visible_gpus():
    assert physical_device("1", {}) == "1"
    assert physical_device("1", {"CUDA_VISIBLE_DEVICES": "4,5"}) == "5"  # a SLURM job's second GPU
    with pytest.raises(BadInput, match="only 2 GPU"):
        physical_device("2", {"CUDA_VISIBLE_DEVICES": "4,5"})


def test_devices_run_one_worker_process_each(write_config, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n".join(f"a blue boat number {i}" for i in range(5)) + "\n")
    config = write_config(steps=2)  # device: cpu here; on a GPU machine each worker sees only its GPU
    result = batch(prompts, "--config", config, "--devices", "0,1", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["done"] == 5 and len(summary["workers"]) == 2
    out = tmp_path / "out"
    lines = shard_manifest_lines(out, 2)
    assert sorted(r["prompt"] for r in lines) == sorted(f"a blue boat number {i}" for i in range(5))
    again = json.loads(batch(prompts, "--config", config, "--devices", "0,1", "--json").stdout)
    assert (again["done"], again["skipped"], again["exit_code"]) == (0, 5, 0)
    bad = batch(prompts, "--config", config, "--devices", "0,x")
    assert bad.returncode == 2 and "--devices '0,x'" in bad.stderr


def test_ray_runs_actors_on_a_local_cluster(write_config, tmp_path):
    pytest.importorskip("ray", reason="Ray is the optional extra fbgen[ray]; `make test` installs it")
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n".join(f"a yellow star number {i}" for i in range(4)) + "\n")
    config = write_config(steps=2)
    result = batch(prompts, "--config", config, "--ray", "local", "--workers", "2", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["done"] == 4 and len(summary["workers"]) == 2
    out = tmp_path / "out"
    lines = shard_manifest_lines(out, 2)
    assert sorted(r["prompt"] for r in lines) == sorted(f"a yellow star number {i}" for i in range(4))
    assert all(file_sha256(r["output"]) == r["sha256"] for r in lines)
    # same ids and seeds as a plain batch: a plain rerun skips everything
    plain = json.loads(batch(prompts, "--config", config, "--json").stdout)
    assert (plain["done"], plain["skipped"]) == (0, 4)
    missing = batch(prompts, "--config", config, "--ray", "local", "--set", "models.S=/nonexistent/model")
    assert missing.returncode == 3, missing.stderr
    no_cluster = batch(prompts, "--config", config, "--ray", "auto", env={**os.environ, "RAY_ADDRESS": ""})
    assert no_cluster.returncode == 2 and "--ray auto: cannot connect" in no_cluster.stderr


def test_sigterm_abandons_the_item_cleanly_and_exits_130(write_config, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n".join(f"a black horse number {i}" for i in range(3)) + "\n")
    config = write_config(steps=400, height=64, width=64)  # ~2 s a video
    proc = subprocess.Popen([sys.executable, "-m", "fbgen", "batch", str(prompts), "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    for line in proc.stdout:
        if "[1/" in line:
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    assert "interrupted" in proc.stderr.read()
    out = tmp_path / "out"
    assert not list(out.glob(".*partial*"))
    done = {r["id"] for r in manifest_lines(out / "manifest.jsonl") if r["status"] == "done"} if (
        out / "manifest.jsonl").exists() else set()  # fmt: skip
    assert len(list(out.glob("*.mp4"))) == len(done) == 0  # the first video was abandoned
    final = batch(prompts, "--config", config, "--json")
    assert final.returncode == 0 and json.loads(final.stdout)["done"] == 3 - len(done)


def test_slurm_array_example_shards_by_task_id(write_config, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n".join(f"a green tree number {i}" for i in range(4)) + "\n")
    config = write_config(steps=2)
    script = Path(__file__).parent.parent / "examples" / "slurm-array.sh"
    out = tmp_path / "renders"
    for task in (0, 1):
        env = {**os.environ, "SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": "2",
               "SLURM_ARRAY_TASK_MIN": "0", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # fmt: skip
        result = subprocess.run(["bash", str(script), str(prompts), str(config), str(out)], env=env,
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        assert result.returncode == 0, result.stderr
    lines = shard_manifest_lines(out, 2)
    assert sorted(r["prompt"] for r in lines) == sorted(f"a green tree number {i}" for i in range(4))
