"""REFER reading: restricted unpickling, field checks, REFER split semantics and deterministic order."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from harness.errors import DataError, UserError
from tasks.loaders.refer import check_split, load_refs, referring_units


def ref(ref_id: int, image_id: int, split: str, sent_ids: list[int], ann_id: int | None = None) -> dict:
    sentences = [
        {"sent_id": s, "sent": f"thing {s}", "raw": f"Thing {s}!", "tokens": ["thing", str(s)]} for s in sent_ids
    ]
    return {
        "ref_id": ref_id,
        "ann_id": ann_id or ref_id * 10,
        "image_id": image_id,
        "category_id": 1,
        "split": split,
        "sent_ids": sent_ids,
        "sentences": sentences,
        "file_name": f"COCO_train2014_{image_id:012d}_{ref_id}.jpg",
        "att_wds": ["extra", "keys", "are", "ignored"],
    }


def write_refer(folder: Path, refs: list[dict], protocol: int = 2) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=protocol))
    images = sorted({r["image_id"] for r in refs})
    instances = {
        "images": [{"id": i, "file_name": f"COCO_train2014_{i:012d}.jpg", "height": 8, "width": 8} for i in images],
        "annotations": [
            {"id": r["ann_id"], "image_id": r["image_id"], "category_id": 1, "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]]}
            for r in refs
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    (folder / "instances.json").write_text(json.dumps(instances))
    return folder / "refs(unc).p", folder / "instances.json"


MIXED = [
    ref(7, 2, "testA", [71, 72]),
    ref(3, 2, "testA", [31]),
    ref(5, 1, "testA", [52, 51]),  # sentence order inside a ref is the file's
    ref(9, 1, "testB", [91]),
    ref(11, 3, "testAB", [111]),
    ref(12, 4, "val", [121]),
    ref(13, 4, "train", [131]),
]


def ids(units) -> list[str]:
    return [f"{u.ref.ref_id}:{u.sentence.sent_id}" for u in units]


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_units_sorted_by_image_ref_and_sentence_order(tmp_path, protocol):
    refs, instances = write_refer(tmp_path / "refcoco", MIXED, protocol)
    units = referring_units(refs, instances, "testA")
    assert ids(units) == ["5:52", "5:51", "3:31", "7:71", "7:72", "11:111"]
    assert units[0].sentence.raw == "Thing 52!" and units[0].sentence.sent == "thing 52"
    assert units[0].image.file_name == "COCO_train2014_000000000001.jpg"


@pytest.mark.parametrize(
    ("split", "expected"),
    [
        ("testB", ["9:91", "11:111"]),  # REFER: split contains "B", so testAB too
        ("val", ["12:121"]),
        ("train", ["13:131"]),
        ("test", ["5:52", "5:51", "9:91", "3:31", "7:71", "7:72", "11:111"]),  # contains "test"
    ],
)
def test_split_membership_follows_refer(tmp_path, split, expected):
    refs, instances = write_refer(tmp_path / "refcoco", MIXED)
    assert ids(referring_units(refs, instances, split)) == expected


def test_unknown_split_names_are_refused_up_front():
    check_split("testA", "unc")
    check_split("test", "umd")
    with pytest.raises(UserError, match=r"unknown split 'testC' for splitBy 'unc'; expected one of train, val, testA"):
        check_split("testC", "unc")
    with pytest.raises(UserError, match="unknown split 'testA' for splitBy 'umd'"):
        check_split("testA", "umd")
    with pytest.raises(UserError, match="unknown REFER splitBy 'xyz'"):
        check_split("val", "xyz")


def test_a_split_without_refs_is_an_error_listing_the_splits_present(tmp_path):
    refs, instances = write_refer(tmp_path / "refcoco", [ref(1, 1, "train", [1]), ref(2, 2, "val", [2])])
    with pytest.raises(DataError, match=r"has no ref in split 'testA' \(splits present: \['train', 'val'\]\)"):
        referring_units(refs, instances, "testA")


class Payload:
    """Pickles as a call to os.system: the restricted unpickler must never make that call."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_imports_a_callable_is_refused_without_calling_it(tmp_path):
    marker = tmp_path / "was_called"
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([Payload(marker)], protocol=2))
    with pytest.raises(DataError) as caught:
        load_refs(path)
    message = str(caught.value)
    assert str(path) in message and ".system" in message and "refused" in message
    assert "plain containers" in message
    assert not marker.exists()


class Plain:
    pass


def test_a_pickle_of_class_instances_is_refused(tmp_path):
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([Plain()], protocol=2))
    with pytest.raises(DataError, match=r"tries to import .*Plain; refused"):
        load_refs(path)


def test_truncated_and_wrongly_shaped_pickles_are_named(tmp_path):
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([ref(1, 1, "val", [1])], protocol=2)[:-20])
    with pytest.raises(DataError, match=r"refs\(unc\).p is not a readable pickle: it ends early"):
        load_refs(path)
    path.write_bytes(pickle.dumps({"refs": []}))
    with pytest.raises(DataError, match="expected a list of ref dicts, got dict"):
        load_refs(path)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda r: r.pop("sentences"), r"ref #0 \(ref_id 1\): missing field 'sentences' \(expected a list\)"),
        (lambda r: r.update(image_id="12"), r"ref_id 1\): field 'image_id' must be an integer, got str '12'"),
        (lambda r: r.update(ann_id=True), r"field 'ann_id' must be an integer, got bool"),
        (lambda r: r["sentences"][0].pop("sent"), r"sentences\[0\]: missing field 'sent'"),
        (lambda r: r.pop("ref_id"), r"ref #0: missing field 'ref_id'"),
    ],
)
def test_missing_fields_and_wrong_types_in_refs_are_named(tmp_path, change, fragment):
    bad = ref(1, 1, "val", [1])
    change(bad)
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([bad]))
    with pytest.raises(DataError, match=fragment):
        load_refs(path)


def test_instances_problems_are_named(tmp_path):
    refs, instances = write_refer(tmp_path / "refcoco", [ref(1, 1, "val", [1])])
    text = instances.read_text()
    instances.write_text(text[: len(text) // 2])
    with pytest.raises(DataError, match=r"instances file .*instances.json is not valid JSON \(line 1"):
        referring_units(refs, instances, "val")
    data = json.loads(text)
    del data["annotations"][0]["segmentation"]
    instances.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"annotations\[0\] \(id 10\): missing field 'segmentation'"):
        referring_units(refs, instances, "val")
    data["annotations"][0]["segmentation"] = [[0, 0, "x", 1, 2, 2]]
    instances.write_text(json.dumps(data))
    with pytest.raises(DataError, match="each polygon must be a flat list of"):
        referring_units(refs, instances, "val")
    data["annotations"] = []
    instances.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"ref 1 refers to annotation 10, which .*instances\.json does not list"):
        referring_units(refs, instances, "val")
