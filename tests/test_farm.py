"""`fbgen batch` on the real farm engines users have: a single-node SLURM (slurm-wlm + munge), a Ray head on
loopback, torchrun. Each cluster is started by its fixture and stopped with exactly the daemons it started; the tests
skip with the reason when an engine cannot start here. Every scenario checks the farm promise: every item rendered
exactly once, and an exit code that tells the truth about the whole batch."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from clusters import RayHead, slurm_cluster, slurm_missing
from farm import assert_all_done_once, claims, fbgen, running_claim, start_until_claimed, wait_for, write_prompts

EXAMPLE = Path(__file__).parent.parent / "examples" / "slurm-array.sh"
LEASE = "6"  # seconds: workers that end early confirm their peers' heartbeats within a second, not 15 s
BIN = Path(sys.executable).parent


# -- SLURM ------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")  # one cluster per test worker that runs a SLURM test, stopped at its end
def slurm(tmp_path_factory):
    reason = slurm_missing()
    if reason:
        pytest.skip(reason)
    try:
        with slurm_cluster(tmp_path_factory.mktemp("slurm")) as cluster:
            cluster.env["PATH"] = f"{BIN}:{cluster.env['PATH']}"  # jobs run the fbgen of this venv
            yield cluster
    except (RuntimeError, subprocess.CalledProcessError) as e:
        pytest.skip(f"the test SLURM cluster did not start: {e}")


def test_slurm_arrays_with_any_spec_render_every_item_once(slurm, write_config, tmp_path):
    """The shipped example script, as a user runs it, with an array subset and a stepped array."""
    texts = [f"a red kite number {i}" for i in range(5)]
    prompts = write_prompts(tmp_path / "p.txt", texts)
    config = write_config(steps=2)
    submits = {}
    for spec in ("1,3", "0-2:2"):
        out = tmp_path / f"out-{spec.replace(',', '_').replace(':', '_')}"
        env = {**slurm.env, "SBATCH_ARRAY_INX": spec, "SBATCH_WAIT": "1"}
        submits[out] = subprocess.Popen(["bash", str(EXAMPLE), str(prompts), str(config), str(out), "--quiet",
                                         "--lease", LEASE],
                                        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)  # fmt: skip
    for out, proc in submits.items():
        stdout, stderr = proc.communicate(timeout=900)
        assert proc.returncode == 0, (stdout, stderr, [p.read_text() for p in (tmp_path / "logs").glob("*")])
        assert_all_done_once(out, texts)
    logs = list((tmp_path / "logs").glob("fbgen-*.log"))
    assert len(logs) == 4  # logs/ made by the script; one per task (2 + 2)


def test_srun_tasks_in_one_job_share_the_queue(slurm, write_config, tmp_path):
    texts = [f"a green frog number {i}" for i in range(4)]
    prompts = write_prompts(tmp_path / "p.txt", texts)
    out = tmp_path / "out"
    command = f"srun -n 2 fbgen batch {prompts} --config {write_config(steps=2)} --out {out} --lease {LEASE}"
    job, code = slurm.sbatch("-n", "2", "-o", str(tmp_path / "job.log"), "--wrap", command, wait=True)
    log = (tmp_path / "job.log").read_text()
    assert code == 0, log
    assert log.count("batch done") == 2  # both ranks ran to the end
    assert_all_done_once(out, texts)


def test_a_failed_item_fails_the_job_and_its_afterok_dependent_never_runs(slurm, write_config, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "a cat"}\n{"prompt": "a dog", "num_frames": 6}\n')
    out, marker = tmp_path / "out", tmp_path / "published"
    job, _ = slurm.sbatch("-o", str(tmp_path / "job.log"), "--wrap",
                          f"fbgen batch {prompts} --config {write_config(steps=2)} --out {out}")  # fmt: skip
    publish, _ = slurm.sbatch(f"--dependency=afterok:{job}", "--kill-on-invalid-dep=yes", "--wrap", f"touch {marker}")
    gate, _ = slurm.sbatch(f"--dependency=afterany:{job}", "-o", str(tmp_path / "gate.log"), "--wrap",
                           f"fbgen status {out}")  # fmt: skip
    for j in (job, publish, gate):
        slurm.wait_gone(j)
    assert slurm.job(job)["ExitCode"] == "1:0", (tmp_path / "job.log").read_text()
    assert "(line 2) failed" in (tmp_path / "job.log").read_text()
    assert slurm.job(publish)["JobState"] == "CANCELLED" and not marker.exists()
    assert slurm.job(gate)["ExitCode"] == "1:0" and "1 failed" in (tmp_path / "gate.log").read_text()


def test_preemption_with_requeue_resumes_and_finishes(slurm, write_config, tmp_path):
    texts = [f"a blue whale number {i}" for i in range(2)]
    prompts = write_prompts(tmp_path / "p.txt", texts)
    out = tmp_path / "out"
    config = write_config(steps=100)  # long enough to be mid-item when the requeue comes
    submit = subprocess.run(
        ["bash", str(EXAMPLE), str(prompts), str(config), str(out)],
        cwd=tmp_path,
        env={**slurm.env, "SBATCH_ARRAY_INX": "0"},
        capture_output=True,
        text=True,
        check=True,
    )
    job = re.search(r"Submitted batch job (\d+)", submit.stdout).group(1)
    held = wait_for(lambda: running_claim(out), "the task to claim an item", timeout=600)
    slurm.run("scontrol", "requeue", job)  # what pre-emption does: SIGTERM, then back to the queue
    wait_for(lambda: claims(out)[held]["state"] != "running", "the pre-empted task to release its item")
    # skip SLURM's 2-minute requeue delay, once the job is back in the queue (an update while it is still
    # completing does not stick)
    wait_for(lambda: slurm.job(job).get("JobState") not in ("RUNNING", "COMPLETING"), "the requeue to finish")
    if slurm.job(job).get("JobState") == "PENDING":
        slurm.run("scontrol", "update", f"JobId={job}", "StartTime=now", check=False)
    slurm.wait_gone(job, timeout=900)
    log = next((tmp_path / "logs").glob(f"fbgen-{job}_0.log")).read_text()
    assert slurm.job(job)["ExitCode"] == "0:0" and slurm.job(job)["Restarts"] == "1", log
    assert log.count("task 0 of job") == 2 and "interrupted" in log  # one log, appended across the requeue
    assert_all_done_once(out, texts)


# -- torchrun ---------------------------------------------------------------------------------------------------------
def test_torchrun_ranks_drain_one_queue_and_a_failed_item_kills_no_rank(write_config, tmp_path):
    torchrun = shutil.which("torchrun", path=str(BIN))
    if torchrun is None:
        pytest.skip("torchrun is not installed")
    prompts = tmp_path / "p.jsonl"
    texts = [f"a small boat number {i}" for i in range(4)]
    prompts.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in texts) + '{"prompt": "x", "steps": 0}\n')
    out = tmp_path / "out"
    result = subprocess.run([torchrun, "--standalone", "--nproc-per-node=2", "-m", "fbgen", "batch", str(prompts),
                             "--config", str(write_config(steps=2)), "--out", str(out), "--lease", LEASE],
                            capture_output=True, text=True, timeout=900)  # fmt: skip
    assert result.returncode != 0  # one item failed: the batch is not complete
    # both ranks reached their end (the failing one waited for the other before exiting): none was killed mid-work
    assert result.stdout.count("batch done") == 2, result.stdout + result.stderr
    done = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["prompt"] for r in done if r["status"] == "done") == sorted(texts)
    assert [r["line"] for r in done if r["status"] == "failed"] == [5]


# -- Ray --------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def ray_head(tmp_path_factory):
    pytest.importorskip("ray", reason="Ray is the optional extra fbgen[ray]; `make test` installs it")
    ray = shutil.which("ray", path=str(BIN))
    if ray is None:
        pytest.skip("the ray command is not installed")
    head = RayHead(ray, tmp_path_factory.mktemp("ray"), cpus=2)
    try:
        head.wait_ready()
    except RuntimeError as e:
        head.stop()
        pytest.skip(f"the test Ray head did not start: {e}")
    yield head
    head.stop()


def test_ray_starts_what_fits_and_renders_every_item_once(ray_head, write_config, tmp_path):
    import importlib.util

    assert importlib.util.find_spec("grpc")  # ray[client], which ray:// addresses need, comes with fbgen[ray]
    texts = [f"a yellow star number {i}" for i in range(4)]
    prompts = write_prompts(tmp_path / "p.txt", texts)
    result = fbgen(
        "batch",
        prompts,
        "--config",
        write_config(steps=2),
        "--ray",
        ray_head.address,
        "--workers",
        "3",
        "--lease",
        LEASE,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "starting 2 of 3 Ray workers: the cluster has 2 free CPU slot(s)" in result.stdout  # never a hang
    assert_all_done_once(tmp_path / "out", texts)


def test_a_killed_ray_actors_item_is_redone_by_the_others(ray_head, write_config, tmp_path):
    texts = [f"a violet moth number {i}" for i in range(3)]
    prompts = write_prompts(tmp_path / "p.txt", texts)
    out = tmp_path / "out"
    driver, held = start_until_claimed(out, "batch", prompts, "--config", write_config(steps=200, height=64, width=64),
                                       "--ray", ray_head.address, "--workers", "2", "--lease", "3")  # fmt: skip
    os.kill(claims(out)[held]["pid"], signal.SIGKILL)  # the actor's process dies mid-item
    stdout, stderr = driver.communicate(timeout=900)
    assert driver.returncode == 0, stdout + stderr
    assert "died" in stdout and f"{held.rpartition('.')[0]}: taking over from" in stdout
    assert_all_done_once(out, texts)


def test_sigterm_to_the_ray_driver_exits_130(ray_head, write_config, tmp_path):
    prompts = write_prompts(tmp_path / "p.txt", [f"an orange fox number {i}" for i in range(2)])
    out = tmp_path / "out"
    driver, _ = start_until_claimed(out, "batch", prompts, "--config", write_config(steps=400, height=64, width=64),
                                    "--ray", ray_head.address, "--workers", "1")  # fmt: skip
    driver.send_signal(signal.SIGTERM)
    _, stderr = driver.communicate(timeout=300)
    assert driver.returncode == 130, stderr
    assert not list(out.glob("*.mp4"))  # nothing under a final name
