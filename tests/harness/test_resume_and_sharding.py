"""Crash-resume and multi-process sharding, through the real CLI in subprocesses."""

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest
from harness_fixtures import REPO, write_toy_data

from harness.results import comparable, read_jsonl


def cached_sample_ids(run_dir):
    ids = set()
    for shard in (run_dir / "cache").glob("rank*.sqlite"):
        with sqlite3.connect(shard) as connection:
            ids |= {
                f"{task} {sample}" for task, sample in connection.execute("SELECT task, sample_id FROM predictions")
            }
    return ids


def test_killed_run_resumes_without_recomputing_finished_samples(plugin_env, tmp_path):
    data = write_toy_data(tmp_path / "data")
    log = tmp_path / "calls.log"
    args = [sys.executable, str(REPO / "run_eval.py"), "--model", "counting", "--model-args", f"log={log},delay=0.15"]
    args += ["--tasks", "toy", "--data-root", str(data), "--batch-size", "1", "--no-progress"]
    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen([*args, "--output-dir", str(interrupted)], env=plugin_env)
    deadline = time.time() + 60
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 6):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = log.read_text().splitlines()
    finished = cached_sample_ids(interrupted)
    assert 5 <= len(finished) < 24, "the kill should land mid-run"
    assert not (interrupted / "results.json").exists()

    resumed = subprocess.run([*args, "--output-dir", str(interrupted)], env=plugin_env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    recomputed = set(log.read_text().splitlines()[len(before) :])
    assert not recomputed & finished, "finished samples must come from the cache"
    assert recomputed | finished == {f"toy_questions s{i:03d}" for i in range(12)} | {
        f"toy_segmentation s{i:03d}" for i in range(12)
    }
    assert len(recomputed) == 24 - len(finished)

    fresh = tmp_path / "fresh"
    done = subprocess.run([*args, "--output-dir", str(fresh)], env=plugin_env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    resumed_results = json.loads((interrupted / "results.json").read_text())
    fresh_results = json.loads((fresh / "results.json").read_text())
    assert comparable(resumed_results) == comparable(fresh_results)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("world_size", [2])
def test_sharded_run_equals_single_process_run(plugin_env, tmp_path, world_size):
    data = write_toy_data(tmp_path / "data", count=13)  # odd count: ranks get unequal shares
    common = ["--model", "constant", "--model-args", "answer=no,mask=center", "--tasks", "toy"]
    common += ["--data-root", str(data), "--no-progress"]
    single = subprocess.run(
        [sys.executable, str(REPO / "run_eval.py"), *common, "--output-dir", str(tmp_path / "single")],
        env=plugin_env,
        capture_output=True,
        text=True,
    )
    assert single.returncode == 0, single.stderr
    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={world_size}"]
    launcher += ["--master_addr=127.0.0.1", f"--master_port={_free_port()}"]
    sharded = subprocess.run(
        [*launcher, str(REPO / "run_eval.py"), *common, "--output-dir", str(tmp_path / "sharded")],
        env=plugin_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert sharded.returncode == 0, sharded.stderr
    single_results = json.loads((tmp_path / "single" / "results.json").read_text())
    sharded_results = json.loads((tmp_path / "sharded" / "results.json").read_text())
    assert sharded_results["runtime"]["world_size"] == world_size
    assert comparable(sharded_results) == comparable(single_results)
    for task in ("toy_questions", "toy_segmentation"):
        single_rows = read_jsonl(tmp_path / "single" / "samples" / f"{task}.jsonl")
        sharded_rows = read_jsonl(tmp_path / "sharded" / "samples" / f"{task}.jsonl")
        strip = [{k: v for k, v in row.items() if k != "prediction"} for row in single_rows]
        assert strip == [{k: v for k, v in row.items() if k != "prediction"} for row in sharded_rows]
    # Each rank wrote its own shard, holding every world_size-th sample.
    for rank in range(world_size):
        with sqlite3.connect(tmp_path / "sharded" / "cache" / f"rank{rank}.sqlite") as connection:
            samples = sorted(
                s for (s,) in connection.execute("SELECT sample_id FROM predictions WHERE task='toy_questions'")
            )
        assert samples == [f"s{i:03d}" for i in range(rank, 13, world_size)]
