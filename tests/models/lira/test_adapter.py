"""The LIRA adapters through `run_eval.py`: `lira-tiny` on every task of the mini benchmark with results identical
across runs and batch sizes; `lira-2b`'s files in the original layout (missing ones named with where to get them,
and loading them, with the tiny fixtures standing in); tile settings and model arguments."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from harness.cli import main
from harness.errors import DataError, UserError
from harness.model import MODELS, get_model
from harness.results import comparable
from harness.task import TASKS, TaskGroup
from harness.types import GenerationSettings, Request
from models.lira import adapter as adapter_module
from models.lira.adapter import LiraAdapter, LiraEngine, parse_tiles
from models.lira.assets.tiny_tokenizer import FOLDER, full_size_tokenizer_folder
from models.lira.config import preset
from models.lira.processor import TileSetting

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures"
os.environ.setdefault("NLTK_DATA", str((REPO / ".." / "shared" / "nltk_data").resolve()))


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dataset_builders.mini import build

    return build(tmp_path_factory.mktemp("mini") / "mini")


def builtin_tasks() -> str:
    """Every built-in task (other tests may have registered plugin tasks in this process, so not ``all``)."""
    names = [
        name
        for name in TASKS.names()
        if not isinstance(TASKS.get(name), TaskGroup) and TASKS.origin(name).startswith("tasks.")
    ]
    return ",".join(names)


def run(mini: Path, out: Path, *extra: str) -> dict:
    args = ["run", "--model", "lira-tiny", "--tasks", builtin_tasks(), "--data-root", str(mini)]
    args += ["--output-dir", str(out)]
    assert main([*args, "--no-progress", "--bootstrap-iters", "20", *extra]) == 0
    results = comparable(json.loads((out / "results.json").read_text()))
    results.pop("git_commit")
    predictions = {
        path.stem: [json.loads(line)["prediction"] for line in path.read_text().splitlines()]
        for path in sorted((out / "samples").glob("*.jsonl"))
    }
    for rows in predictions.values():
        for prediction in rows:
            prediction.pop("latency_s")
    return {"results": results, "predictions": predictions}


def check_identical_runs(mini: Path, tmp_path: Path, *limit: str) -> None:
    first = run(mini, tmp_path / "b4-1", "--batch-size", "4", *limit)
    assert first == run(mini, tmp_path / "b4-2", "--batch-size", "4", *limit)
    single = run(mini, tmp_path / "b1", "--batch-size", "1", *limit)
    assert single["predictions"] == first["predictions"]
    assert single["results"]["tasks"] == first["results"]["tasks"]
    tasks = first["results"]["tasks"]
    assert set(tasks) == set(builtin_tasks().split(",")) and all(task["n_failed"] == 0 for task in tasks.values())
    kinds = {task["config"]["kind"] for task in tasks.values()}
    assert kinds == {"referring_segmentation", "grounded_caption", "caption", "vqa"}
    # the noise model still produces masks and [SEG] tokens somewhere: the pipeline is exercised, not skipped
    assert any(p["masks"] for name, rows in first["predictions"].items() if name.startswith("ref") for p in rows)


def test_lira_tiny_runs_every_task_identically_across_runs_and_batch_sizes(mini: Path, tmp_path: Path) -> None:
    check_identical_runs(mini, tmp_path, "--limit", "2")


@pytest.mark.slow
def test_lira_tiny_on_the_whole_mini_benchmark_identically_across_runs_and_batch_sizes(
    mini: Path, tmp_path: Path
) -> None:
    check_identical_runs(mini, tmp_path)


def test_registered_models_and_what_they_serve() -> None:
    assert {"lira-2b", "lira-8b", "lira-tiny"} <= set(MODELS.names())
    assert MODELS.kwargs("lira-2b") == {"preset": "lira-2b"} and MODELS.kwargs("lira-8b") == {"preset": "lira-8b"}
    tiny = get_model("lira-tiny", "seed=3")
    assert tiny.capabilities == frozenset({"text", "masks", "probes"})
    assert tiny.request_kinds == frozenset({"referring_segmentation", "grounded_caption", "caption", "vqa"})
    assert tiny.fingerprint() == get_model("lira-tiny", "seed=3").fingerprint()
    assert tiny.fingerprint() != get_model("lira-tiny", "seed=4").fingerprint()
    assert tiny.weight_files()[0] == FOLDER / "tokenizer.model"


def test_missing_weight_files_are_named_with_where_to_get_them(
    mini: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pretrained" / "InternVL2-2B").mkdir(parents=True)
    code = main(["run", "--model", "lira-2b", "--tasks", "refcoco_val", "--data-root", str(mini)])
    error = capsys.readouterr().err
    assert code == 2 and "Traceback" not in error
    assert "weights=model_weight/LIRA-2B.pth (https://huggingface.co/echo840/LIRA (folder model_weight/))" in error
    assert "omg_seg=pretrained/omg_llava/omg_seg_convl.pth" in error
    assert "class_embeddings=pretrained/omg_llava/convnext_large_d_320_CocoPanopticOVDataset.pth" in error
    assert "internvl=" not in error  # present
    with pytest.raises(
        DataError, match=r"internvl=elsewhere/InternVL2-8B \(https://huggingface.co/OpenGVLab/InternVL2-8B\)"
    ):
        get_model("lira-8b", "internvl=elsewhere/InternVL2-8B")
    with pytest.raises(UserError, match="fixes preset"):
        get_model("lira-2b", "preset=lira-8b")


def fixture_files(folder: Path) -> dict[str, Path]:
    """The tiny parity fixtures in the official formats: an InternVL2 folder (with the bundled tokenizer beside its
    weights), a LIRA `.pth` of projector tensors, OMG-Seg weights and class embeddings."""
    internvl = folder / "InternVL2-tiny"
    shutil.copytree(FIXTURES / "internvl2_tiny" / "single", internvl)
    for path in FOLDER.iterdir():
        shutil.copy(path, internvl / path.name)
    weights = folder / "LIRA-tiny.pth"
    torch.save(load_file(FIXTURES / "lira_seg_tiny" / "lira_projectors.safetensors"), weights)
    seg = FIXTURES / "lira_seg_tiny"
    return {
        "weights": weights,
        "internvl": internvl,
        "omg_seg": seg / "omg_seg.safetensors",
        "class_embeddings": seg / "ov_classifier.safetensors",
    }


def test_lira_adapter_loads_the_official_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`lira-2b`'s loading path on files of the tiny architecture (the preset swapped for `lira-tiny`)."""
    monkeypatch.setattr(adapter_module, "lira_preset", lambda name: preset("lira-tiny"))
    files = fixture_files(tmp_path)
    arguments = ",".join(f"{key}={path}" for key, path in files.items())
    model = get_model("lira-2b", arguments + ",tiles=refcoco:1-2,threads=1")
    assert isinstance(model, LiraAdapter) and model.preferred_batch_size == 1
    listed = model.weight_files()
    assert listed[0] == files["weights"] and listed[-2:] == [files["omg_seg"], files["class_embeddings"]]
    assert files["internvl"] / "model.safetensors" in listed and files["internvl"] / "tokenizer.model" in listed
    image = tmp_path / "scene.png"
    Image.new("RGB", (50, 30), (200, 40, 40)).save(image)
    request = Request(
        task="refcoco_val",
        task_family="refcoco",
        sample_id="1",
        kind="referring_segmentation",
        image=str(image),
        prompt="Please segment the dog.",
        generation=GenerationSettings(max_new_tokens=3),
    )
    assert model.engine.tile_setting(request) == TileSetting(1, 2)
    (prediction,) = model.predict([request])
    assert prediction.generated_tokens == 3 and prediction.metadata["tiles"] == 3  # 2 x 1 grid + thumbnail
    fingerprint = model.fingerprint()
    with files["weights"].open("ab") as handle:
        handle.write(b"changed")
    assert model.fingerprint() != fingerprint
    # a tokenizer whose ids are not the model's (here: the real 92,544-piece layout) is refused, naming the folder
    other = tmp_path / "other"
    shutil.copytree(files["internvl"], other)
    full_size_tokenizer_folder(other)
    with pytest.raises(DataError, match=r"other: tokenizer does not fit the model \(\[SEG\] -> 92553"):
        get_model("lira-2b", arguments.replace(str(files["internvl"]), str(other)))


def engine_request(kind: str, family: str) -> Request:
    return Request(task="t", task_family=family, sample_id="s", kind=kind, image="x.jpg", prompt="q")  # type: ignore[arg-type]


def test_tile_settings_follow_the_original_scripts_and_overrides() -> None:
    engine = get_model("lira-tiny").engine
    assert isinstance(engine, LiraEngine)
    cases = {
        ("referring_segmentation", "refcoco"): (4, 12),  # refcoco_lira.py
        ("referring_segmentation", "attreval"): (4, 12),  # AttrEval segmentation is scored like RefCOCO
        ("grounded_caption", "gcg"): (1, 6),  # gcg_lira.py --max_patch 6
        ("caption", "chair"): (1, 6),  # eval_lira.sh CHAIR
        ("vqa", "pope"): (4, 8),  # eval_lira.sh POPE
        ("vqa", "attreval"): (4, 6),  # eval_lira.sh refcoco_attri
        ("vqa", "other"): (4, 6),  # eval_lira.sh VQA sets
    }
    for (kind, family), (low, high) in cases.items():
        assert engine.tile_setting(engine_request(kind, family)) == TileSetting(low, high), (kind, family)
    engine = get_model("lira-tiny", "tiles=pope:1-1;vqa:2-3").engine
    assert engine.tile_setting(engine_request("vqa", "pope")) == TileSetting(1, 1)  # family first
    assert engine.tile_setting(engine_request("vqa", "attreval")) == TileSetting(2, 3)  # then kind
    assert parse_tiles(["refcoco+ : 4 - 12"]) == {"refcoco+": TileSetting(4, 12)}
    for bad, message in (("refcoco=4-12", "FAMILY_OR_KIND:MIN-MAX"), ("refcoco:5-4", "min_tiles <= max_tiles")):
        with pytest.raises(UserError, match=message):
            parse_tiles([bad])


def test_model_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="probe_top_k must be 0 or more"):
        get_model("lira-tiny", "probe_top_k=-1")
    with pytest.raises(UserError, match="threads must be at least 1"):
        get_model("lira-tiny", "threads=0")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            get_model("lira-tiny", "device=cuda")
    with pytest.raises(DataError, match=r"weights=.*absent\.pth does not exist"):
        get_model("lira-tiny", f"weights={tmp_path / 'absent.pth'}")
    foreign = tmp_path / "foreign.pth"
    torch.save({"projector.extra.weight": torch.zeros(2, 2)}, foreign)
    with pytest.raises(DataError, match=r"foreign\.pth: checkpoint does not match the model(.|\n)*projector\.extra"):
        get_model("lira-tiny", f"weights={foreign}")
    bad = tmp_path / "words.json"
    bad.write_text('{"colors": "red"}')
    with pytest.raises(DataError, match=r"words\.json"):
        get_model("lira-tiny", f"probe_words={bad}")
    good = tmp_path / "good.json"
    good.write_text('{"colors": ["Red", "gold", "light blue"]}')
    vocabulary = get_model("lira-tiny", f"probe_words={good}").engine.prober.vocabulary
    assert dict(vocabulary.token_ids["colors"]).keys() == {"red", "gold"}
    assert vocabulary.skipped["colors"] == ("light blue",)


def test_sampling_is_refused() -> None:
    engine = get_model("lira-tiny").engine
    sampled = Request(
        task="t",
        task_family="pope",
        sample_id="s",
        kind="vqa",
        image="x.jpg",
        prompt="q",
        generation=GenerationSettings(greedy=False),
    )
    with pytest.raises(UserError, match="asks for sampling"):
        engine.predict([sampled])
