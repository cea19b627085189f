"""The AttrEval builder's reading rules: colours of pixels, words of expressions, positions and relations."""

from __future__ import annotations

import numpy as np
import pytest

from dataset_builders.attreval.colors import CLASSES, class_shares, classify_pixels, dominant, word_share
from dataset_builders.attreval.language import names_category, read_expression
from dataset_builders.attreval.scene import Relation, Rules, Scene, SceneObject


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((255, 0, 0), "red"),
        ((120, 20, 20), "red"),  # dark red stays red
        ((255, 140, 0), "orange"),
        ((250, 230, 40), "yellow"),
        ((30, 150, 40), "green"),
        ((20, 200, 200), "cyan"),
        ((20, 40, 200), "blue"),
        ((120, 30, 150), "purple"),
        ((255, 170, 190), "pink"),
        ((140, 80, 30), "brown"),
        ((128, 128, 128), "gray"),
        ((250, 250, 250), "white"),
        ((10, 10, 10), "black"),
    ],
)
def test_pixels_go_to_the_named_colour_they_look_like(rgb, name):
    assert CLASSES[int(classify_pixels(np.array(rgb, dtype=np.uint8)))] == name


def test_shares_families_and_dominant_colour():
    pixels = np.zeros((2, 5, 3), dtype=np.uint8)
    pixels[:, :3] = (255, 0, 0)
    pixels[:, 3:] = (250, 250, 250)
    mask = np.ones((2, 5), dtype=np.uint8)
    mask[1, 4] = 0  # 9 pixels: 6 red, 3 white
    shares = class_shares(classify_pixels(pixels), mask)
    assert shares["red"] == pytest.approx(6 / 9) and shares["white"] == pytest.approx(3 / 9)
    assert dominant(shares) == "red"
    assert word_share(shares, "silver") == pytest.approx(3 / 9)  # silver is confirmed by gray and white
    assert word_share(shares, "gold") == 0.0
    assert dominant(class_shares(classify_pixels(pixels), np.zeros((2, 5)))) is None


@pytest.mark.parametrize(
    ("text", "category", "colors", "positions", "relation"),
    [
        ("red cup in the middle", "cup", ("red",), ("center",), None),
        ("the bike with the black seat", "motorcycle", (), (), None),
        ("man in black coat", "person", ("black",), (), None),
        ("man next to woman in red", "person", (), (), ("next to", "person")),
        ("guy to the left of the car", "person", (), (), None),
        ("red bicycle far left", "bicycle", ("red",), ("left",), None),
        ("grey cat at the upper right", "cat", ("gray",), ("top", "right"), None),
        ("orange on the left", "orange", (), ("left",), None),
        ("the dog in front of the sofa", "dog", (), (), ("in front of", "couch")),
    ],
)
def test_expression_words_about_the_target(text, category, colors, positions, relation):
    found = read_expression(text, category)
    assert found.colors == colors and found.positions == positions
    if relation is None:
        assert found.relation is None
    else:
        assert (found.relation.relation, found.relation.categories[0]) == relation


def test_relation_without_a_coco_object_and_category_nouns():
    found = read_expression("the table under the saucer", "dining table")
    assert found.relation is None and found.dangling_relation == "under"
    assert read_expression("Cup of coffee", "cup").empty
    assert names_category("the one next to the bikes", "bicycle") and names_category("the two men", "person")
    assert not names_category("the red one on the left", "cup")


def test_positions_and_relations_by_boxes():
    scene = Scene(
        200,
        100,
        (
            SceneObject(1, "cup", "kitchen", (10, 10, 20, 20)),  # centre (20, 20)
            SceneObject(2, "cup", "kitchen", (30, 35, 20, 20)),  # centre (40, 45); 5 px below 1 (near: <= 10)
            SceneObject(3, "bowl", "kitchen", (170, 70, 30, 30)),  # touches the right and bottom borders
        ),
        Rules(),
    )
    one, two, three = scene.objects
    cups = [one, two]
    assert scene.position_holds(one, "left", cups) and scene.position_holds(two, "right", cups)
    assert scene.position_holds(one, "top", cups) and scene.position_holds(two, "front", cups)
    assert not scene.position_holds(one, "center", cups)
    assert scene.position_holds(three, "right", [three]) and scene.position_holds(three, "bottom", [three])
    assert not scene.position_holds(three, "front", [three])  # front/back of a lone object: unknown
    assert scene.predicate(three, "corner") and not scene.predicate(two, "edge")
    assert scene.relation_holds(one, two, "above") and scene.relation_holds(two, one, "below")
    assert scene.relation_holds(one, two, "near") and scene.relation_holds(one, three, "far")
    assert scene.relation_holds(one, two, "behind") is None
    assert scene.could_relate(one, Relation("behind", 2)) and not scene.could_relate(three, Relation("behind", 2))
