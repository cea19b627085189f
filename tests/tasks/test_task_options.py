"""Task behaviour on the mini benchmark: ids, prompts, decoding, layouts, path overrides and CHAIR's image choice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import UserError
from harness.task import TASKS, expand_task_names, get_task
from tasks.gcg import GLAMM_PROMPT, LIRA_PROMPTS

ANNOTATIONS = Path(__file__).resolve().parents[2] / "dataset_builders" / "mini" / "annotations"


def test_groups():
    assert expand_task_names("refcoco") == ["refcoco_val", "refcoco_testA", "refcoco_testB"]
    assert expand_task_names("refcocog,gcg") == ["refcocog_val", "refcocog_test", "gcg_val", "gcg_test"]
    assert expand_task_names("pope") == ["pope_random", "pope_popular", "pope_adversarial"]
    assert expand_task_names("pope_gqa") == ["pope_gqa_random", "pope_gqa_popular", "pope_gqa_adversarial"]
    built_in = [name for name in expand_task_names("all") if TASKS.origin(name).startswith("tasks.")]
    assert len(built_in) == 23  # 8 RefCOCO-style, 2 GCG, 9 POPE, CHAIR, AttrEval QA + seg + LIRA's QA
    assert expand_task_names("attreval") == ["attreval_qa", "attreval_seg"]


def test_referring_samples_ids_prompts_and_targets(mini_root):
    task = get_task("refcoco_val")
    samples = task.samples(mini_root)
    first = samples[1]  # coffee cup, second sentence "Cup of coffee"
    assert first.sample_id == "10000001:2" and first.image_size == (400, 600)
    assert first.image.endswith("glamm_data/images/coco2014/train2014/COCO_train2014_000000900002.jpg")
    assert task.request(first).prompt == "Please segment cup of coffee."  # LIRA: lower-cased `sent`
    assert first.inputs["raw"] == "Cup of coffee"
    assert task.request(first).generation.max_new_tokens == 100 and task.requires == {"masks"}
    assert first.target["mask"]["size"] == [400, 600]
    assert task.config()["options"]["split_by"] == "unc" and get_task("refcocog_test").split_by == "umd"


def test_refer_target_mask_drops_pixels_covered_twice(mini_root):
    """The camera man is two overlapping polygons (head, coat): the overlap is neither target nor background."""
    from harness import masks

    task = get_task("refcoco_testA")
    target = next(s for s in task.samples(mini_root) if s.inputs["raw"] == "man on the left").target["mask"]
    objects = json.loads((ANNOTATIONS / "objects.json").read_text())["objects"]
    head, coat = (masks.from_polygons([polygon], 512, 512)[0] for polygon in objects["camera/person"]["polygons"])
    overlap = masks.intersection_area(head, coat)
    assert overlap > 0
    assert masks.area(target) == masks.area(head) + masks.area(coat) - 2 * overlap


def test_gcg_prompts_and_samples(mini_root):
    glamm, lira = get_task("gcg_val"), get_task("gcg_val", "prompts=lira")
    assert (
        glamm.prompt_template == GLAMM_PROMPT and glamm.retry_prompts == () and glamm.generation.max_new_tokens == 512
    )
    assert lira.prompt_template == LIRA_PROMPTS[0] and lira.retry_prompts == LIRA_PROMPTS[1:]
    assert lira.generation.max_new_tokens == 100
    sample = glamm.samples(mini_root)[0]
    assert sample.sample_id == "sa_920001" and sample.target["labels"][0] == "A smiling astronaut"
    assert len(sample.target["masks"]) == 4 and sample.target["captions"] == [sample.target["caption"]]
    with pytest.raises(UserError, match="unknown caption scorer"):
        get_task("gcg_test", "caption_scorers=METEOR;BLEU")


def test_pope_prompt_decoding_and_sources(mini_root):
    task = get_task("pope_adversarial")
    sample = task.samples(mini_root)[0]
    assert sample.sample_id == "1" and sample.target == {"label": "yes", "question_id": "1"}
    assert task.request(sample).prompt == (
        "Is there a person in the image?\nAnswer the question using a single word or phrase."
    )
    assert (task.generation.num_beams, task.generation.min_new_tokens, task.generation.max_new_tokens) == (5, 1, 100)
    assert get_task("pope_random", "num_beams=1").generation.num_beams == 1
    gqa = get_task("pope_gqa_popular").samples(mini_root)[0]
    assert gqa.image.endswith("gqa/images/910001.jpg") and Path(gqa.image).is_file()


def test_attreval_prompt_is_the_question_as_is(mini_root):
    task = get_task("attreval_qa_lira")
    first, second = task.samples(mini_root)[:2]
    assert task.request(first).prompt == "What color is the motorcycle? Answer with one word."
    assert first.target == {"answer": "red", "attribute": "color"} and second.target["answer"] == "no"
    assert (task.generation.max_new_tokens, task.generation.num_beams) == (10, 1)
    assert Path(first.image).is_file()


def test_chair_images_drawn_with_a_recorded_seed_or_listed(mini_root, tmp_path):
    drawn = get_task("chair", "num_images=5,seed=3")
    ids = [s.sample_id for s in drawn.samples(mini_root)]
    assert len(ids) == 5 and ids == sorted(ids, key=int)
    assert ids == [s.sample_id for s in get_task("chair", "num_images=5,seed=3").samples(mini_root)]
    assert drawn.config()["options"]["seed"] == "3" and drawn.config()["options"]["num_images"] == "5"
    listed = tmp_path / "ids.txt"
    listed.write_text("COCO_val2014_000000910006.jpg\n910002\n")
    chosen = get_task("chair", f"image_ids={listed}")
    assert [s.sample_id for s in chosen.samples(mini_root)] == ["910002", "910006"]
    assert "image_ids" in chosen.data_files(mini_root) and "seed" not in chosen.config()["options"]
    lira_list = get_task("chair", f"image_ids={mini_root / 'chair/chair_test.jsonl'},prompt=lira")
    assert len(lira_list.samples(mini_root)) == 14
    assert lira_list.prompt_template == "Provide an in-depth description of this image."
    sample = next(s for s in get_task("chair").samples(mini_root) if s.sample_id == "910002")  # coffee
    assert {"cup", "spoon", "dining table"} <= set(sample.target["objects"])  # from instances_val2014
    with pytest.raises(UserError, match="annotation_splits"):
        get_task("chair", "annotation_splits=train")


def test_lisa_and_glamm_layouts_are_found(mini_root, tmp_path):
    root = tmp_path / "dataset"
    (root / "refer_seg/images/mscoco/images").mkdir(parents=True)
    shutil.copytree(mini_root / "ref_seg/refcoco", root / "refer_seg/refcoco")
    shutil.copytree(
        mini_root / "glamm_data/images/coco2014/train2014", root / "refer_seg/images/mscoco/images/train2014"
    )
    shutil.copytree(mini_root / "glamm_data/annotations/gcg_val_test", root / "GranDf/annotations/val_test")
    shutil.copytree(mini_root / "glamm_data/images/grandf/val_test", root / "GranDf_HA_images/val_test")
    refcoco = get_task("refcoco_testB")
    assert refcoco.data_files(root)["refs"] == root / "refer_seg/refcoco/refs(unc).p"
    assert all(Path(s.image).is_file() for s in refcoco.samples(root))
    assert all(Path(s.image).parent == root / "GranDf_HA_images/val_test" for s in get_task("gcg_test").samples(root))
    forced = get_task("refcoco_val", "layout=lira")
    assert forced.missing_files(root) == [root / "ref_seg/refcoco/refs(unc).p", root / "ref_seg/refcoco/instances.json"]
    with pytest.raises(UserError, match="layout 'lisa' is not available here"):
        get_task("gcg_val", "layout=lisa").data_files(root)


def test_per_task_path_overrides_from_the_command_line(mini_root, tmp_path, capsys):
    elsewhere = tmp_path / "annotations"
    shutil.copytree(mini_root / "ref_seg/refcoco", elsewhere)
    images = mini_root / "glamm_data/images/coco2014/train2014"
    override = ",".join(
        [
            f"refcoco_val.refs={elsewhere / 'refs(unc).p'}",
            f"refcoco_val.instances={elsewhere / 'instances.json'}",
            f"refcoco.images={images}",
        ]
    )
    code = main(["check-data", "--tasks", "refcoco_val", "--task-args", override, "--data-root", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"present  {elsewhere / 'refs(unc).p'}" in out
    assert "refcoco_val ok: 16 samples, 2 images" in [" ".join(line.split()) for line in out.splitlines()]
