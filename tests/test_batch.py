"""Batch: prompt files, stable ids/seeds, unique names, a shared queue (exactly once), honest exit codes, resume,
failure isolation, kills, signals and a full disk. The real SLURM, Ray and torchrun layouts are in test_farm.py."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from farm import assert_all_done_once, claims, fbgen, renders, running_claim, start, start_until_claimed, write_prompts

from fbgen.apps.batch import in_shard, item_seed, parse_shard, read_prompts
from fbgen.apps.launchers import physical_device, worst
from fbgen.apps.worker import Worker
from fbgen.core.errors import BadInput

LEASE = "6"  # seconds: tests with several workers need not wait the default 120 s lease's 15-s heartbeat checks


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
        ('{"prompt": "a", "id": "k"}\n{"prompt": "b", "id": "k"}\n', ":2: id 'k' is used twice \\(also line 1\\)"),
        ('{"prompt": "a", "id": "../etc"}\n', ":1: 'id' must be 1-64 characters"),
        ("# only a comment\n", "no prompts"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "p.jsonl"
    path.write_text(text)
    with pytest.raises(BadInput, match=message):
        read_prompts(path)


def test_static_shards_partition_items_and_bad_shards_are_refused():
    ids = [f"item{i}" for i in range(200)]
    owners = [[k for k in range(1, 5) if in_shard(i, (k, 4))] for i in ids]
    assert all(len(o) == 1 for o in owners) and {o[0] for o in owners} == {1, 2, 3, 4}
    assert parse_shard("2/4") == (2, 4) and parse_shard(None) is None  # no shard: the whole queue is shared
    for bad in ("5/4", "0/4", "3", "a/b"):
        with pytest.raises(BadInput, match="--shard"):
            parse_shard(bad)


def test_workers_know_their_run_and_whether_they_exit_as_a_group():
    plain = Worker.here({})
    assert plain.run == plain.token and not plain.group
    array = Worker.here({"SLURM_ARRAY_JOB_ID": "41", "SLURM_JOB_ID": "44", "SLURM_ARRAY_TASK_ID": "3"})
    assert array.run == "41" and not array.group  # every task of an array (and its requeues) is one run
    srun = Worker.here({"SLURM_JOB_ID": "50", "SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": "1"})
    assert srun.run == "50" and srun.group and srun.peers == 2
    torchrun = Worker.here({"TORCHELASTIC_RUN_ID": "x", "WORLD_SIZE": "3", "RANK": "1", "MASTER_PORT": "29500"})
    assert torchrun.group and torchrun.run.startswith("torchrun-x") and torchrun.peers == 3
    assert Worker.here({"FBGEN_RUN_ID": "r1", "SLURM_JOB_ID": "50"}).run == "r1"
    assert worst([0, 1, 130, 3]) == 130 and worst([0, 2, 1]) == 2 and worst([0, -9]) == 1 and worst([0, 0]) == 0


def test_encoded_prompts_move_whole_between_host_and_device():
    import torch

    from fbgen.apps.worker import to_device
    from fbgen.families.ltx import Prompt

    cond = Prompt(torch.ones(1, 4, 8), torch.ones(1, 4, dtype=torch.bool), None, None)
    moved = to_device(cond, "meta")
    assert isinstance(moved, Prompt) and moved.positive.device.type == moved.positive_mask.device.type == "meta"
    assert moved.negative is None and cond.positive.device.type == "cpu"


def test_device_indices_count_the_visible_gpus():
    assert physical_device("1", {}) == "1"
    assert physical_device("1", {"CUDA_VISIBLE_DEVICES": "4,5"}) == "5"  # a SLURM job's second GPU
    with pytest.raises(BadInput, match="only 2 GPU"):
        physical_device("2", {"CUDA_VISIBLE_DEVICES": "4,5"})


def test_failed_items_keep_the_exit_code_until_retried_and_are_listed(write_config, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "a red cat"}\n{"prompt": "a blue dog", "num_frames": 6}\n'
                       '{"prompt": "a green bird", "seed": 5}\n{"prompt": "a red cat", "steps": 3}\n')  # fmt: skip
    config = write_config(steps=2)
    out = tmp_path / "out"
    first = fbgen("batch", prompts, "--config", config, "--json")
    assert first.returncode == 1, first.stderr  # one item failed, the others are done
    summary = json.loads(first.stdout)
    assert (summary["done"], summary["failed"], summary["skipped"]) == (3, 1, 0)
    assert [f["line"] for f in summary["failed_items"]] == [2] and "4k+1 frames" in summary["failed_items"][0]["error"]
    assert "(line 2) failed: BadInput" in first.stderr  # on stderr too, for the farm log
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["line"] for r in records] == [1, 2, 3, 4] and records[1]["status"] == "failed"
    assert [r["seed"] for r in records if r["prompt"] == "a green bird"] == [5]
    cats = [r["output"] for r in records if r["prompt"] == "a red cat"]
    assert len(set(cats)) == 2  # same prompt and seed, different overrides: two files, never one overwritten
    assert summary["flops"] == summary["executed_flops"] == sum(r["flops"]["total"] for r in records if "flops" in r)

    # a rerun does not hide the failure (an afterok dependent must not run), and redoes a damaged video
    with open(cats[0], "ab") as f:
        f.write(b"corrupt")
    again = fbgen("batch", prompts, "--config", config, "--json")
    assert again.returncode == 1 and "(line 2) failed" in again.stderr
    assert (json.loads(again.stdout)["done"], json.loads(again.stdout)["skipped"]) == (1, 2)
    status = fbgen("status", out)
    assert status.returncode == 1 and "3 done, 1 failed, 0 in progress, 0 missing" in status.stdout
    retry = fbgen("batch", prompts, "--config", config, "--json", "--retry-failed")
    assert retry.returncode == 1 and json.loads(retry.stdout)["failed"] == 1  # retried, failed again: still 1
    assert renders(out) == {r["id"]: 1 for r in records if r["status"] == "done"} | {records[0]["id"]: 2}


def test_a_template_that_gives_two_items_one_name_is_refused_before_loading(write_config, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "a red cat", "seed": 1}\n{"prompt": "a red cat", "seed": 1, "guidance_scale": 2}\n')
    result = fbgen("batch", prompts, "--config", write_config(filename="{slug}-{seed}"))
    assert result.returncode == 2
    assert "gives lines 1 and 2 the same output name 'a-red-cat-1'; include {id}" in result.stderr
    assert not (tmp_path / "out").exists()  # nothing written


def test_workers_on_one_output_dir_render_every_item_exactly_once(write_config, tmp_path):
    texts = [f"a red ball number {i}" for i in range(6)]
    prompts = write_prompts(tmp_path / "p.txt", texts)
    config = write_config(steps=3)
    # no shards given; a short lease so a worker that ends first sees the others' heartbeats within a second
    procs = [start("batch", prompts, "--config", config, "--quiet", "--lease", LEASE) for _ in range(3)]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in results]
    assert_all_done_once(tmp_path / "out", texts)


def test_a_killed_workers_item_is_taken_over_after_its_lease(write_config, tmp_path):
    texts = [f"a white bird number {i}" for i in range(3)]
    prompts = write_prompts(tmp_path / "p.txt", texts)
    config = write_config(steps=200, height=64, width=64)
    out = tmp_path / "out"
    victim, _ = start_until_claimed(out, "batch", prompts, "--config", config, "--lease", "600")
    victim.send_signal(signal.SIGKILL)  # node loss: no clean-up, its claim stays "running"
    victim.wait()
    held = running_claim(out)
    rescuer = fbgen("batch", prompts, "--config", config, "--lease", "2")
    assert rescuer.returncode == 0, rescuer.stderr
    assert f"{held.rpartition('.')[0]}: taking over from" in rescuer.stdout
    assert_all_done_once(out, texts)


def test_sigterm_releases_the_item_and_exits_130_then_a_rerun_completes(write_config, tmp_path):
    texts = [f"a black horse number {i}" for i in range(2)]
    prompts = write_prompts(tmp_path / "p.txt", texts)
    config = write_config(steps=400, height=64, width=64)
    out = tmp_path / "out"
    proc, held = start_until_claimed(out, "batch", prompts, "--config", config)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err
    assert claims(out)[held]["state"] == "released"  # the next worker takes it at once, no lease to wait out
    assert not list(out.glob(".*partial*")) and not list(out.glob("*.mp4"))
    final = fbgen("batch", prompts, "--config", config, "--json", "--set", "steps=4")
    assert final.returncode == 0, final.stderr
    assert_all_done_once(out, texts)


def test_an_interrupt_right_after_an_item_is_taken_releases_it(tmp_path, monkeypatch):
    """A signal can land after a worker takes an item and before its render starts: `run_worker` releases the claim
    all the same (it is the one place that does, for any interrupt), so the next worker need not wait out a lease."""
    from types import SimpleNamespace

    from fbgen.apps import worker as worker_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(worker_module, "_render", interrupted)
    out = tmp_path / "out"
    batch = SimpleNamespace(config=SimpleNamespace(output_dir=str(out)), root=out / ".fbgen",
                            items=[SimpleNamespace(id="a")], jobs={"a": None})  # fmt: skip
    engine = SimpleNamespace(encode=lambda jobs: [], release_text_encoder=lambda: None)
    with pytest.raises(KeyboardInterrupt):
        worker_module.run_worker(engine, batch, Worker("w1", "r1"), worker_module.Options())
    assert {name: c["state"] for name, c in claims(out).items()} == {"a.0": "released"}


def test_an_interrupt_while_a_claim_is_written_releases_it(tmp_path, monkeypatch):
    from fbgen.apps.claims import Claim, Claims

    def interrupted(self):
        raise KeyboardInterrupt

    queue = Claims(tmp_path, "w1", "r1")
    with monkeypatch.context() as patch:
        patch.setattr(Claim, "_write", interrupted)
        with pytest.raises(KeyboardInterrupt):
            queue.take("a", 0)
    queue.release_held()  # what run_worker does on the interrupt
    assert json.loads((tmp_path / "claims" / "a.0").read_bytes())["state"] == "released"


def test_sigterm_while_models_load_exits_130(write_config, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a cat\n")
    proc = start("batch", prompts, "--config", write_config())
    for line in proc.stdout:
        if "loading" in line:  # start-up is over, the weights are loading
            proc.send_signal(signal.SIGTERM)
            break
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert not list((tmp_path / "out").glob("*.mp4"))


def test_a_swallowed_interrupt_still_exits_130(monkeypatch):
    import typer

    from fbgen import cli
    from fbgen.core import interrupts

    monkeypatch.setattr(interrupts, "_interrupted", type(interrupts._interrupted)())

    def body() -> int:
        with contextlib.suppress(KeyboardInterrupt):  # as a library that catches everything would
            os.kill(os.getpid(), signal.SIGTERM)
        return 0

    with pytest.raises(typer.Exit) as exit_:
        cli._guarded(False, body)
    assert exit_.value.exit_code == 130


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs: a real full disk (ENOSPC), not a mocked one. Needs root (as on CI)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_the_batch_with_one_line_and_truncates_nothing(write_config, tmp_path, small_disk):
    texts = [f"a grey wolf number {i}" for i in range(2)]
    prompts = write_prompts(tmp_path / "p.txt", texts)
    out = small_disk / "out"
    config = write_config(steps=2, height=64, width=64, num_frames=9, output_dir=str(out))
    out.mkdir()
    filler = small_disk / "filler"
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler.write_bytes(b"\0" * (free - 24 * 2**10))  # room for the claim and records, not for the video
    full = fbgen("batch", prompts, "--config", config)
    assert full.returncode == 1, full.stdout + full.stderr
    errors = [line for line in full.stderr.splitlines() if line.startswith("fbgen: error")]
    assert len(errors) == 1 and "no space left on device" in errors[0] and "Traceback" not in full.stderr
    assert not list(out.glob("*.mp4")) and not list(out.glob(".*partial*"))  # nothing truncated under a final name
    filler.unlink()
    rerun = fbgen("batch", prompts, "--config", config, "--retry-failed")
    assert rerun.returncode == 0, rerun.stderr
    assert_all_done_once(out, texts)


def test_devices_run_one_worker_each_and_pass_sigterm_on(write_config, tmp_path):
    texts = [f"a blue boat number {i}" for i in range(3)]
    prompts = write_prompts(tmp_path / "p.txt", texts)
    out = tmp_path / "out"
    slow = write_config(steps=400, height=64, width=64)  # device: cpu here; on a GPU each worker sees only its GPU
    driver, held = start_until_claimed(out, "batch", prompts, "--config", slow, "--devices", "0,1", "--lease", LEASE)
    driver.send_signal(signal.SIGTERM)
    _, err = driver.communicate(timeout=300)
    assert driver.returncode == 130, err
    assert claims(out)[held]["state"] == "released" and not list(out.glob("*.mp4"))
    result = fbgen("batch", prompts, "--config", write_config(steps=2), "--devices", "0,1", "--json", "--lease", LEASE)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["done"] == 3 and len(summary["workers"]) == 2
    assert_all_done_once(out, texts)
    bad = fbgen("batch", prompts, "--config", slow, "--devices", "0,x")
    assert bad.returncode == 2 and "--devices '0,x'" in bad.stderr


def test_status_of_a_directory_that_is_no_batch_is_bad_input(tmp_path):
    result = fbgen("status", tmp_path)
    assert result.returncode == 2 and "not a batch output directory" in result.stderr


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
