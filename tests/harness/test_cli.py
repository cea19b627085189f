"""The command line as a user meets it: one-line errors with exit code 2, listings, re-scoring."""

import json
import subprocess
import sys

import pytest
from harness_fixtures import REPO, write_toy_data


def cli(args, env, cwd=None):
    return subprocess.run(
        [sys.executable, str(REPO / "run_eval.py"), *args], env=env, cwd=cwd, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_toy_data(tmp_path_factory.mktemp("cli") / "data")


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_unknown_task_and_model_suggest_close_names(plugin_env, data, tmp_path):
    result = cli(["--model", "oracle", "--tasks", "toy_question", "--data-root", str(data)], plugin_env)
    assert_one_line_error(result, "unknown task 'toy_question'", "Did you mean 'toy_questions'")
    result = cli(["--model", "oracel", "--tasks", "toy", "--data-root", str(data)], plugin_env)
    assert_one_line_error(result, "unknown model 'oracel'", "Did you mean 'oracle'")


def test_malformed_model_args(plugin_env, data):
    result = cli(
        ["--model", "constant", "--model-args", "answer", "--tasks", "toy", "--data-root", str(data)], plugin_env
    )
    assert_one_line_error(result, "malformed --model-args 'answer'", "key=value")
    result = cli(
        ["--model", "constant", "--model-args", "mask=round", "--tasks", "toy", "--data-root", str(data)], plugin_env
    )
    assert_one_line_error(result, "argument 'mask'", "not one of none, empty, full, center")


def test_missing_data_root_lists_expected_files(plugin_env, tmp_path):
    result = cli(
        ["--model", "oracle", "--tasks", "toy_questions", "--data-root", str(tmp_path / "nowhere")], plugin_env
    )
    assert_one_line_error(result, "does not exist", "toy_questions", "toy/toy.json")


def test_unreadable_replay_names_the_line(plugin_env, data, tmp_path):
    replay = tmp_path / "bad.jsonl"
    good = {"task": "toy_questions", "sample_id": "s000", "text": "yes"}
    replay.write_text(json.dumps(good) + "\n" + '{"task": "toy_questions", "sample_id": 1, "text": ' + "\n")
    args = ["--model", "replay", "--model-args", f"predictions={replay}", "--tasks", "toy", "--data-root", str(data)]
    assert_one_line_error(cli(args, plugin_env), f"replay file {replay} line 2 is not valid JSON")
    replay.write_text(json.dumps({**good, "text": 3}) + "\n")
    assert_one_line_error(cli(args, plugin_env), "line 1", "field 'text' must be a string")


def test_list_and_a_full_run_then_score(plugin_env, data, tmp_path):
    listing = cli(["list", "tasks"], plugin_env)
    assert listing.returncode == 0 and "toy_questions" in listing.stdout and "group: toy_questions" in listing.stdout
    assert "oracle" in cli(["list", "models"], plugin_env).stdout
    out = tmp_path / "run"
    args = ["--model", "constant", "--tasks", "toy", "--data-root", str(data), "--output-dir", str(out)]
    result = cli([*args, "--no-progress"], plugin_env)
    assert result.returncode == 0, result.stderr
    assert "toy_questions" in result.stdout and "50.00" in result.stdout and str(out / "results.json") in result.stdout
    first = json.loads((out / "results.json").read_text())
    rescored = cli(["score", str(out)], plugin_env)
    assert rescored.returncode == 0, rescored.stderr
    second = json.loads((out / "results.json").read_text())
    assert first["tasks"] == second["tasks"]


def test_help_exits_cleanly(plugin_env):
    result = cli(["--help"], plugin_env)
    assert result.returncode == 0 and "--model" in result.stdout
