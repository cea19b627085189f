"""The AttrEval builder on the mini benchmark's RefCOCO files.

Expected items are worked out from the hand-written annotations (dataset_builders/mini/annotations/
refs.json and objects.json) and the photographs, RefCOCO val = the coffee image (600 x 400: cup, spoon,
dining table) and the motorcycle image (741 x 500: motorcycle, bench, bicycle, bottle):

- cup, box x 180-410 (centre x 295 = 0.49 W) y 22-308: "red cup in the middle" -> red (the red cup),
  center (a lone cup, centre in the middle third);
- spoon, x 325-428 (centre 376.5 = 0.63 W): "silver spoon on the right" -> silver, right (> 0.55 W);
- dining table: "wooden table" says nothing; "under the saucer" points at no COCO object;
- motorcycle, x 100-692 (centre 396 = 0.53 W): "red motorcycle", "motorbike in the middle" -> red, center;
  "the bike with the black seat": black is the seat's colour;
- bench, x 62-278 (centre 170 = 0.23 W): "on the left" -> left; "behind the motorcycle" -> behind;
- bicycle, x 0-75: "far left", "left edge" -> left, edge (it touches the left border); its "red" is
  rejected: the polygon is mostly the dark wheel and the garage behind it;
- bottle, x 400-420 y 52-95 (centre y 73.5 = 0.15 H): "yellow bottle on the top shelf" -> yellow, top.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from pathlib import Path

import pytest
from PIL import Image

from dataset_builders import mini
from dataset_builders.attreval import build, default_output
from dataset_builders.attreval.colors import NEIGHBOURS
from dataset_builders.attreval.scene import Description, Relation, Rules, Scene, SceneObject
from harness.errors import UserError
from tasks.loaders.attreval import load_attreval
from tasks.loaders.common import load_plain_pickle
from tasks.loaders.refer import load_refs, referring_units

EXPECTED_PAIRS = {
    # (object, attribute, truth): the true question
    ("cup", "color", "red"): "Is the cup red? Answer yes or no.",
    ("cup", "position", "center"): "Is the cup in the middle of the image? Answer yes or no.",
    ("spoon", "category", "spoon"): "Is the one on the right a spoon? Answer yes or no.",
    ("spoon", "color", "silver"): "Is the spoon silver? Answer yes or no.",
    ("spoon", "position", "right"): "Is the spoon on the right side of the image? Answer yes or no.",
    ("motorcycle", "category", "motorcycle"): "Is the red one in the middle a motorcycle? Answer yes or no.",
    ("motorcycle", "color", "red"): "Is the motorcycle red? Answer yes or no.",
    ("motorcycle", "position", "center"): "Is the motorcycle in the middle of the image? Answer yes or no.",
    ("bench", "position", "left"): "Is the bench on the left side of the image? Answer yes or no.",
    ("bench", "relation", "behind"): "Is the bench behind the motorcycle? Answer yes or no.",
    ("bicycle", "category", "bicycle"): "Is the one on the left a bicycle? Answer yes or no.",
    ("bicycle", "position", "left"): "Is the bicycle on the left side of the image? Answer yes or no.",
    ("bicycle", "position", "edge"): "Is the bicycle at the edge of the image? Answer yes or no.",
    ("bottle", "category", "bottle"): "Is the yellow one a bottle? Answer yes or no.",
    ("bottle", "color", "yellow"): "Is the bottle yellow? Answer yes or no.",
    ("bottle", "position", "top"): "Is the bottle at the top of the image? Answer yes or no.",
}
"""No category pair for the cup ("the red one": the spoon and the table are reddish too; "the one in the
middle": the table's centre is nearer the middle), the table or the bench ("the one on the left" is the
bicycle; others near the motorcycle could be "behind" it)."""

EXPECTED_SEG = {
    ("spoon", "position", "the one on the right"),
    ("motorcycle", "combined", "the red one in the middle"),  # "the red one": the bicycle is said red too
    ("bicycle", "position", "the one on the left"),
    ("bicycle", "position", "the one at the edge"),
    ("bottle", "color", "the yellow one"),
    ("bottle", "position", "the one at the top"),
}


@pytest.fixture(scope="module")
def mini_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mini.build(tmp_path_factory.mktemp("mini") / "mini")


@pytest.fixture(scope="module")
def unbalanced(mini_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(mini_data, tmp_path_factory.mktemp("attreval") / "out", balance="none").out


def categories(root: Path) -> dict[int, str]:
    data = json.loads((root / "ref_seg/refcoco/instances.json").read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    return {a["id"]: names[a["category_id"]] for a in data["annotations"]}


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_expected_questions_for_the_hand_checked_objects(unbalanced, mini_data):
    names = categories(mini_data)
    qa = rows(unbalanced / "refcoco_attri.jsonl")
    pairs = [qa[i : i + 2] for i in range(0, len(qa), 2)]
    found = {}
    for pair in pairs:
        yes = next(row for row in pair if row["answer"] == "yes")
        no = next(row for row in pair if row["answer"] == "no")
        assert yes["ann_id"] == no["ann_id"] and yes["attribute"] == no["attribute"] and yes["truth"] == no["truth"]
        key = (names[yes["ann_id"]], yes["attribute"], yes["truth"])
        found[key] = yes["question"]
        negative = no["value"]
        assert negative != yes["truth"] and no["question"] == yes["question"].replace(
            f" {_phrase(yes)}?", f" {_phrase(no)}?"
        )
        if yes["attribute"] == "category":  # same supercategory (kitchen or vehicle here)
            family = {"spoon": "kitchen", "bottle": "kitchen", "motorcycle": "vehicle", "bicycle": "vehicle"}
            assert _supercategory(negative) == family[yes["truth"]]
        elif yes["attribute"] == "color":
            assert negative in NEIGHBOURS[yes["truth"]] or negative in {
                w for n in NEIGHBOURS[yes["truth"]] for w in NEIGHBOURS[n]
            }
        elif yes["attribute"] == "position":
            opposite = {"right": {"left"}, "left": {"right"}, "top": {"bottom"}, "edge": {"center"}}
            assert negative in opposite.get(yes["truth"], {"left", "right"})
        else:
            assert (yes["truth"], negative) == ("behind", "in front of")
    assert found == EXPECTED_PAIRS


def _phrase(row: dict) -> str:
    phrases = {
        "center": "in the middle of the image",
        "left": "on the left side of the image",
        "right": "on the right side of the image",
        "top": "at the top of the image",
        "bottom": "at the bottom of the image",
        "edge": "at the edge of the image",
        "behind": "behind the motorcycle",
        "in front of": "in front of the motorcycle",
    }
    value = row["value"]
    if row["attribute"] == "category":
        return ("an " if value[0] in "aeiou" else "a ") + value
    return phrases.get(value, value)


def _supercategory(name: str) -> str:
    from dataset_builders.coco import COCO_CATEGORIES

    return next(group for _, category, group in COCO_CATEGORIES if category == name)


def test_expected_segmentation_expressions_in_refer_format(unbalanced, mini_data):
    names = categories(mini_data)
    seg = rows(unbalanced / "seg.jsonl")
    assert {(names[r["ann_id"]], r["attribute"], r["expression"]) for r in seg} == EXPECTED_SEG
    assert all(r["mask"]["size"] == [500, 741] if r["image_id"] == 900008 else [400, 600] for r in seg)
    units = referring_units(unbalanced / "refs(unc).p", unbalanced / "instances.json", "val")
    assert sorted(u.sentence.sent for u in units) == sorted(r["expression"] for r in seg)
    assert {u.sentence.attribute for u in units} == {"position", "combined", "color"}
    bicycle = next(u for u in units if u.sentence.sent == "the one at the edge")
    assert bicycle.ref.attributes["position"] == ("left", "edge") and bicycle.category.name == "bicycle"


def test_the_ambiguity_filter_rejects_shared_attributes(unbalanced):
    # in the mini: "the red one" would fit the motorcycle and the bicycle ("red bicycle far left")
    seg = rows(unbalanced / "seg.jsonl")
    assert "the red one" not in {r["expression"] for r in seg}
    # a constructed scene: two red objects, one blue; colour alone is ambiguous, position settles it
    red = {"red": 0.8, "white": 0.2}
    scene = Scene(
        100,
        100,
        (
            SceneObject(1, "cup", "kitchen", (5, 40, 20, 20), red),
            SceneObject(2, "bowl", "kitchen", (70, 40, 20, 20), red),
            SceneObject(3, "cup", "kitchen", (40, 40, 20, 20), {"blue": 1.0}),
        ),
        Rules(),
    )
    first = scene.get(1)
    assert scene.singles_out(first, Description(color="red")) == "ambiguous"
    assert scene.singles_out(first, Description(color="red", position="left")) is None
    assert scene.singles_out(first, Description(category="cup", color="red")) is None
    assert scene.singles_out(first, Description(position="right")) == "position does not pick the target"
    assert scene.singles_out(scene.get(3), Description(color="blue")) is None
    # a relation that two objects could have is ambiguous too
    near = Scene(
        100,
        100,
        (
            SceneObject(1, "cup", "kitchen", (10, 10, 10, 10)),
            SceneObject(2, "cup", "kitchen", (30, 10, 10, 10)),
            SceneObject(3, "bottle", "kitchen", (20, 10, 8, 10)),
        ),
    )
    assert near.singles_out(near.get(1), Description(relation=Relation("next to", 3))) == "ambiguous"


def test_rejected_candidates_are_counted_by_reason(unbalanced):
    summary = json.loads((unbalanced / "build.json").read_text())
    rejected = {(item["stage"], item["reason"]): item["count"] for item in summary["rejected"]}
    # "Cup of coffee", "the espresso cup", "spoon", "wooden table", "the bike with the black seat", "bottle"
    assert rejected[("expression", "no colour, position or relation word about the target")] == 6
    assert rejected[("relation", "no COCO object named after the relation word")] == 1  # under the saucer
    assert rejected[("color", "not among the mask's dominant colours")] == 1  # the bicycle's red
    assert summary["kept"] == {"category": 7, "color": 4, "position": 7, "relation": 1}
    sheet = (unbalanced / "DATASHEET.md").read_text()
    assert "| expression | no colour, position or relation word about the target | 6 |" in sheet
    assert "| val | relation | 1 | 2 | 1 | 1 |" in sheet


def test_same_seed_same_files_other_seed_other_negatives_only(mini_data, tmp_path):
    first = build(mini_data, tmp_path / "a", seed=0, balance="none").out
    again = build(mini_data, tmp_path / "b", seed=0, balance="none").out
    assert digests(first) == digests(again)
    other = build(mini_data, tmp_path / "c", seed=1, balance="none").out
    before, after = rows(first / "refcoco_attri.jsonl"), rows(other / "refcoco_attri.jsonl")
    assert len(before) == len(after)
    changed = 0
    for old, new in zip(before, after, strict=True):
        if old["answer"] == "yes":
            assert old == new
            continue
        same = {key: value for key, value in old.items() if key not in ("question", "value")}
        assert same == {key: value for key, value in new.items() if key not in ("question", "value")}
        changed += old["value"] != new["value"]
    assert changed >= 1
    unchanged = {"seg.jsonl", "refs(unc).p", "instances.json", "datasets/seg/data-00000-of-00001.arrow"}
    a, c = digests(first), digests(other)
    assert all(a[name] == c[name] for name in unchanged)


def test_default_build_is_balanced_and_paired(mini_data, tmp_path):
    out = build(mini_data, tmp_path / "out").out
    qa = rows(out / "refcoco_attri.jsonl")
    per_type = {}
    for index in range(0, len(qa), 2):
        first, second = qa[index], qa[index + 1]
        assert {first["answer"], second["answer"]} == {"yes", "no"} and first["attribute"] == second["attribute"]
        assert first["answer"] == ("yes" if index % 4 == 0 else "no")  # the true question alternates
        per_type[first["attribute"]] = per_type.get(first["attribute"], 0) + 1
    assert per_type == {"category": 1, "color": 1, "position": 1, "relation": 1}  # the rarest: one relation
    assert [q.attribute for q in load_attreval(out / "refcoco_attri.jsonl")] == [r["attribute"] for r in qa]
    seg = rows(out / "seg.jsonl")
    assert sorted(r["attribute"] for r in seg) == ["color", "combined", "position"]
    summary = json.loads((out / "build.json").read_text())
    dropped = {(i["stage"], i["reason"]): i["count"] for i in summary["rejected"]}
    assert dropped[("qa", "dropped to balance the attribute types")] == 16 - 4
    assert dropped[("seg", "dropped to balance the attribute types")] == 6 - 3


def test_datasets_export_matches_the_jsonl(unbalanced):
    import datasets

    qa = datasets.load_from_disk(str(unbalanced / "datasets/qa"))
    seg = datasets.load_from_disk(str(unbalanced / "datasets/seg"))
    assert qa.to_list() == [{k: v for k, v in row.items()} for row in rows(unbalanced / "refcoco_attri.jsonl")]
    assert [row["expression"] for row in seg] == [row["expression"] for row in rows(unbalanced / "seg.jsonl")]
    assert seg[0]["mask_counts"] == rows(unbalanced / "seg.jsonl")[0]["mask"]["counts"]


def test_bad_input_is_skipped_and_counted(mini_data, tmp_path):
    root = tmp_path / "mini"
    shutil.copytree(mini_data, root)
    instances_path = root / "ref_seg/refcoco/instances.json"
    instances = json.loads(instances_path.read_text())
    refs = load_refs(root / "ref_seg/refcoco/refs(unc).p")
    spoon = next(ref for ref in refs if any(s.sent == "silver spoon on the right" for s in ref.sentences))
    instances["annotations"] = [a for a in instances["annotations"] if a["id"] != spoon.ann_id]
    instances_path.write_text(json.dumps(instances))
    (root / "glamm_data/images/coco2014/train2014/COCO_train2014_000000900008.jpg").write_bytes(b"not a jpeg")
    raw = load_plain_pickle(root / "ref_seg/refcoco/refs(unc).p", "refs pickle")
    raw.append({**raw[0], "ref_id": 99, "image_id": 12345, "sentences": [], "sent_ids": []})
    (root / "ref_seg/refcoco/refs(unc).p").write_bytes(pickle.dumps(raw, protocol=2))
    out = build(root, tmp_path / "out", balance="none").out
    summary = json.loads((out / "build.json").read_text())
    rejected = {(i["stage"], i["reason"]): i["count"] for i in summary["rejected"]}
    assert rejected[("input", "annotation missing from instances.json")] == 1
    assert rejected[("input", "image file cannot be read")] == 4  # the motorcycle image's four refs
    assert rejected[("input", "image not listed in instances.json")] == 1
    assert rejected[("expression", "no colour, position or relation word about the target")] == 3  # coffee only
    qa = rows(out / "refcoco_attri.jsonl")
    assert {row["image_id"] for row in qa} == {900002}
    sheet = (out / "DATASHEET.md").read_text()
    assert "| input | image file cannot be read | 4 |" in sheet


def test_a_size_mismatch_is_bad_input(mini_data, tmp_path):
    root = tmp_path / "mini"
    shutil.copytree(mini_data, root)
    path = root / "glamm_data/images/coco2014/train2014/COCO_train2014_000000900002.jpg"
    Image.open(path).resize((300, 200)).save(path)
    summary = build(root, tmp_path / "out", export_datasets=False).summary
    rejected = {(i["stage"], i["reason"]): i["count"] for i in summary["rejected"]}
    assert rejected[("input", "image size differs from instances.json")] == 3


def test_refuses_foreign_output_and_unknown_names(mini_data, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not made by this builder"):
        build(mini_data, foreign)
    with pytest.raises(UserError, match="unknown split"):
        build(mini_data, tmp_path / "x", splits=("testC",))
    with pytest.raises(UserError, match="unknown dataset"):
        build(mini_data, tmp_path / "x", dataset="refclef")
    first = build(mini_data, tmp_path / "again", export_datasets=False).out
    assert build(mini_data, first, export_datasets=False).out == first  # its own output is replaced


def test_the_cli_and_the_mini_build(mini_data, tmp_path, capsys):
    from dataset_builders.attreval.__main__ import main

    assert main(["--data-root", str(mini_data), "--out", str(tmp_path / "cli"), "--no-datasets"]) == 0
    assert "questions" in capsys.readouterr().out
    built = default_output(mini_data, "refcoco", "val")  # the mini build includes AttrEval
    assert (built / "refcoco_attri.jsonl").read_bytes() == (tmp_path / "cli" / "refcoco_attri.jsonl").read_bytes()
    assert main(["--data-root", str(tmp_path / "nothing"), "--out", str(tmp_path / "y")]) == 2


def test_duplicates_are_removed(mini_data, tmp_path):
    root = tmp_path / "mini"
    shutil.copytree(mini_data, root)
    path = root / "ref_seg/refcoco/refs(unc).p"
    raw = load_plain_pickle(path, "refs pickle")
    cup = next(ref for ref in raw if ref["sentences"][0]["sent"] == "red cup in the middle")
    raw.append({**cup, "ref_id": cup["ref_id"] + 500})  # a second ref on the same cup, same words
    path.write_bytes(pickle.dumps(raw, protocol=2))
    summary = build(root, tmp_path / "out", balance="none", export_datasets=False).summary
    rejected = {(i["stage"], i["reason"]): i["count"] for i in summary["rejected"]}
    assert rejected[("qa", "duplicate")] == 2  # the cup's colour (red) and position (center) pairs
    assert summary["counts"]["qa_questions"] == 2 * len(EXPECTED_PAIRS)
