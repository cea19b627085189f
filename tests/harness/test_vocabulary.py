"""LIRA's word lists as data, and the rules that match attribute values to the words of a probe's lists."""

from __future__ import annotations

from dataset_builders.coco import COCO_CATEGORIES
from harness.vocabulary import (
    LIRA_COLORS,
    LIRA_OBJECTS,
    LIRA_POSITIONS,
    LIRA_RELATIONS,
    WORD_LISTS,
    list_role,
    match_word,
    role_lists,
)


def test_the_four_lists_have_the_sizes_lira_prints():
    # lira-model.md §15.21: 80 objects, 18 relations, 19 positions, 14 colours
    assert (len(LIRA_OBJECTS), len(LIRA_RELATIONS), len(LIRA_POSITIONS), len(LIRA_COLORS)) == (80, 18, 19, 14)
    assert WORD_LISTS["relation"][5] == "in front of" and WORD_LISTS["color"][-1] == "black"
    assert "tvmonitor" in LIRA_OBJECTS and "tv" not in LIRA_OBJECTS  # VOC spellings, as in app_lira.py


def test_every_coco_category_matches_a_lira_object_word():
    words = WORD_LISTS["category"]
    assert all(match_word(name, words) is not None for _, name, _ in COCO_CATEGORIES)
    assert match_word("motorcycle", words) == "motorbike"
    assert match_word("dining table", words) == "diningtable"
    assert match_word("potted plant", ["Potted_Plant"]) == "Potted_Plant"
    assert match_word("gray", ["Red", "Grey"]) == "Grey"
    assert match_word("tv", ["tv monitor"]) == "tv monitor"
    assert match_word("in front of", ["In front of"]) == "In front of"
    assert match_word("giraffe", ["zebra"]) is None


def test_list_roles_by_name():
    assert [list_role(name) for name in ("objects", "Colours", "positions", "relation", "scenes")] == [
        "category",
        "color",
        "position",
        "relation",
        None,
    ]
    assert role_lists({"objects": {}, "category": {}, "colors": {}}) == {"category": "objects", "color": "colors"}
