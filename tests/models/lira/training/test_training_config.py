"""The shipped configs carry the original's values (lira-model.md §9-10), and every value can be overridden."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import UserError
from models.lira.training.config import CONFIG_FOLDER, load_config
from models.lira.training.engine import fill_deepspeed_config
from models.lira.training.train import main


def test_stage1_is_the_pretrain_config() -> None:
    config = load_config("stage1")
    assert config.stage == "pretrain" and config.model.preset == "lira-2b"
    assert config.model.init_pth is None
    assert (config.optim.lr, config.optim.betas, config.optim.weight_decay, config.optim.max_grad_norm) == (
        1e-3,
        (0.9, 0.999),
        0.0,
        1.0,
    )
    assert (config.batch.per_device, config.batch.accumulation) == (8, 4)
    assert (config.schedule.epochs, config.schedule.warmup_ratio, config.schedule.warmup_start_factor) == (
        1,
        0.03,
        1e-5,
    )
    assert (config.data.max_length, config.data.max_tiles) == (4096, 6)
    assert not config.sampler.group_by_length  # DefaultSampler(shuffle=True)
    (source,) = config.data.sources
    assert (source.format, source.annotations, source.images) == (
        "llava",
        "data/pretrained/stage1.json",
        "data/pretrained",
    )
    assert (source.repeats, source.copies) == (1, 1)  # no debug subset
    assert config.export_name == "lira_2b_pre.pth"


def test_stage2_is_the_finetune_config() -> None:
    config = load_config("stage2")
    assert config.stage == "finetune"
    assert (config.model.lora.rank, config.model.lora.alpha, config.model.lora.dropout) == (128, 256, 0.05)
    assert config.model.init_pth == "pretrained/omg_llava/lira_2b_pre.pth"
    assert config.optim.lr == 2e-5 and (config.batch.per_device, config.batch.accumulation) == (1, 16)
    assert config.data.max_length == 1024 and config.sampler.group_by_length
    mix = [(s.name, s.format, s.repeats, s.copies) for s in config.data.sources]
    assert mix == [
        ("sft", "llava", 1, 1),
        ("refcoco", "refcoco", 1, 3),
        ("refcoco+", "refcoco", 1, 3),
        ("refcocog", "refcoco", 1, 3),
        ("refcocog_gcg", "refcocog_gcg", 1, 1),
        ("flickr_gcg", "flickr_gcg", 1, 1),
        ("grandf", "grandf", 10, 1),
        ("openpsg", "openpsg", 1, 1),
    ]
    assert all(s.annotations.endswith("_highlight_bg.json") for s in config.data.sources if "gcg" in s.name)
    assert config.export_name == "LIRA-2B.pth" and config.distributed.strategy == "ddp"


def test_8b_configs_inherit_and_change_what_the_original_changes() -> None:
    two, eight = load_config("stage2").to_dict(), load_config("stage2-8b").to_dict()
    assert eight["model"]["preset"] == "lira-8b" and eight["model"]["internvl"] == "pretrained/InternVL2-8B"
    assert eight["model"]["lora"] == {"rank": 256, "alpha": 512.0, "dropout": 0.05}
    assert eight["model"]["init_pth"] == "pretrained/omg_llava/lira_8b_pre.pth"
    differing = {key for key in two if two[key] != eight[key]}
    assert differing == {"model", "output_dir", "export_name"}
    pre = load_config("stage1-8b")
    assert pre.model.preset == "lira-8b" and pre.export_name == "lira_8b_pre.pth" and pre.optim.lr == 1e-3


def test_overrides() -> None:
    config = load_config(
        "stage2",
        ["optim.lr=1e-4", "data.sources.6.repeats=2", "model.init_pth=null", "batch.accumulation=8", "seed=3"],
    )
    assert config.optim.lr == 1e-4 and config.data.sources[6].repeats == 2 and config.model.init_pth is None
    assert config.batch.accumulation == 8 and config.seed == 3
    assert config.fingerprint() != load_config("stage2").fingerprint()
    assert load_config("stage2", ["output_dir=x", "max_steps=2"]).fingerprint() == load_config("stage2").fingerprint()
    with pytest.raises(UserError, match=r"unknown key\(s\) \['lrr'\] in .*stage2.yaml.optim"):
        load_config("stage2", ["optim.lrr=1"])
    with pytest.raises(UserError, match=r"batch.accumulation must be an integer, got 'many'"):
        load_config("stage2", ["batch.accumulation=many"])
    with pytest.raises(UserError, match=r"data.sources.9 is not an index of a 8-item list"):
        load_config("stage2", ["data.sources.9.repeats=2"])
    with pytest.raises(UserError, match=r"stage 1 trains on LLaVA-format captions only"):
        load_config("stage1", ["data.sources.0.format=grandf"])
    with pytest.raises(UserError, match=r"no training config 'stage3'"):
        load_config("stage3")


def test_print_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", "stage2-8b", "--set", "optim.lr=3e-5", "--max-steps", "5", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "lr: 3.0e-05" in printed and "max_steps: 5" in printed and "rank: 256" in printed
    assert main(["--config", "stage2", "--set", "nonsense"]) == 2


def test_deepspeed_zero2_file_and_its_auto_values() -> None:
    raw = json.loads((CONFIG_FOLDER / "deepspeed_zero2.json").read_text())
    assert raw["zero_optimization"] == {"stage": 2, "overlap_comm": True}
    assert raw["fp16"] == {"enabled": "auto", "initial_scale_power": 16} and raw["bf16"] == {"enabled": "auto"}
    filled = fill_deepspeed_config(raw, load_config("stage2"))
    assert filled["gradient_accumulation_steps"] == 16 and filled["train_micro_batch_size_per_gpu"] == 1
    assert filled["gradient_clipping"] == 1.0
    assert filled["fp16"]["enabled"] is False and filled["bf16"]["enabled"] is False  # autocast instead
    assert raw["fp16"]["enabled"] == "auto"  # the input is not modified


def test_configs_folder_holds_the_configs() -> None:
    assert {path.name for path in CONFIG_FOLDER.iterdir()} >= {
        "stage1.yaml",
        "stage1-8b.yaml",
        "stage2.yaml",
        "stage2-8b.yaml",
        "deepspeed_zero2.json",
    }
    assert Path(__file__).resolve().parents[4] / "configs" == CONFIG_FOLDER
