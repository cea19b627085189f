"""Synthetic scenes: same formats as the mini benchmark, sizes that follow from the scene count, seeded."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from dataset_builders.synthetic import COLOURS, build, draw_scene, make_benchmark, random_scene
from tasks.loaders.attreval import load_attreval
from tasks.loaders.gcg import load_gcg
from tasks.loaders.pope import load_pope
from tasks.loaders.refer import referring_units


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return build(tmp_path_factory.mktemp("synthetic") / "data", scenes=30, seed=5, size=96)


def test_every_task_file_loads_with_counts_that_follow_from_the_scenes(scenes):
    benchmark = make_benchmark(30, seed=5, size=96)
    shapes_per_scene = [sum(1 for obj in benchmark.objects if obj.image == image.key) for image in benchmark.images]
    assert all(2 <= count <= 4 for count in shapes_per_scene)
    val_scenes = [count for index, count in enumerate(shapes_per_scene) if index % 3 == 0]
    refcoco = scenes / "ref_seg/refcoco"
    assert len(referring_units(refcoco / "refs(unc).p", refcoco / "instances.json", "val")) == 2 * sum(val_scenes)
    refcocog = scenes / "ref_seg/refcocog"
    test_scenes = [count for index, count in enumerate(shapes_per_scene) if index % 2 == 1]
    assert len(referring_units(refcocog / "refs(umd).p", refcocog / "instances.json", "test")) == sum(test_scenes)
    gcg = scenes / "glamm_data/annotations/gcg_val_test"
    assert len(load_gcg(gcg / "val_gcg_coco_caption_gt.json", gcg / "val_gcg_coco_mask_gt.json")) == 15
    for setting in ("random", "popular", "adversarial"):
        labels = [q.label for q in load_pope(scenes / f"pope/coco/coco_pope_{setting}.json")]
        assert labels == ["yes", "no"] * 60  # two present and two absent colour-shape pairs per scene
    assert len(load_attreval(scenes / "refcoco_attri/refcoco_attri.jsonl")) == 60
    chair = json.loads((scenes / "chair/annotations/instances_val2014.json").read_text())
    assert len(chair["images"]) == 30


def test_pope_labels_are_true_of_the_drawn_scene(scenes):
    benchmark = make_benchmark(30, seed=5, size=96)
    present = {image.key: set() for image in benchmark.images}
    for ref in benchmark.refs:
        if ref.dataset == "refcoco+":
            present[ref.object.split("/")[0]].add(ref.sentences[0])
    by_name = {f"COCO_val2014_{image.val_id:012d}.jpg": image.key for image in benchmark.images}
    for question in load_pope(scenes / "pope/coco/coco_pope_adversarial.json"):
        pair = re.fullmatch(r"Is there an? (\w+ \w+) in the image\?", question.text).group(1)
        assert (pair in present[by_name[question.image]]) == (question.label == "yes"), question


def test_drawing_matches_the_annotation_and_seed(scenes):
    rng = np.random.default_rng(0)
    shapes = random_scene(rng, 90)
    pixels = draw_scene(shapes, 90)
    for shape in shapes:
        xs, ys = shape.polygon[0::2], shape.polygon[1::2]
        centre = (round(sum(ys) / len(ys)), round(sum(xs) / len(xs)))
        if shape.kind != "triangle":
            assert tuple(pixels[centre]) == COLOURS[shape.colour]
    assert [s.name for s in random_scene(np.random.default_rng(0), 90)] == [s.name for s in shapes]
    one, other = make_benchmark(5, seed=1), make_benchmark(5, seed=2)
    assert [o.polygons for o in one.objects] != [o.polygons for o in other.objects]
    assert [o.polygons for o in one.objects] == [o.polygons for o in make_benchmark(5, seed=1).objects]
