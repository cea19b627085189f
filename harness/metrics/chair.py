"""CHAIR (object hallucination in captions), exactly as OPERA's ``chair.py`` (and LIRA's copy of it) scores.

A caption is read into COCO object mentions by `parse_caption`:

1. ``nltk.word_tokenize(caption.lower())``, ``nltk.pos_tag``, then ``WordNetLemmatizer().lemmatize`` with
   the part of speech from the tag's first letter (J adjective, V verb, R adverb, anything else noun);
2. adjacent lemmas that form a double word (`DOUBLE_WORDS`) are merged, greedily from the left: "baby
   bird" -> "bird", "toilet seat" -> "toilet", "hot dog" stays one word, and a double word that is no
   synonym ("home plate", "train track", "motor bike") is consumed and fires nothing;
3. when both "toilet" and "seat" remain, every "seat" is dropped;
4. the remaining words found in the synonym table (`SYNONYMS`) are the mentions, each mapped to its
   node word (one of the 80 COCO categories, `NODE_WORDS`).

Quirks of the reference synonym table, reproduced on purpose (the table is parsed the same way: lines
stripped and split on ``", "``):

* two rows carry a double space, so the entries " motor bike" and " cheesecake" keep a leading space and
  never match: "motor bike" and "cheesecake" are never counted;
* "iPhone" is listed with a capital letter but captions are lower-cased, so it never matches;
* the table's leading blank line adds the harmless entry ``""``.

Per caption c with mentions M_c (node words, repetitions kept), ground-truth node words G_c, hallucinated
mentions H_c (not in G_c) and recalled node words R_c (distinct mentions in G_c):
CHAIR_s = share of captions with a hallucination; CHAIR_i = Σ|H_c| / Σ|M_c|;
recall = Σ|R_c| / Σ|G_c|; len = 0.01 × mean number of tokens after the double-word merge
(punctuation included), so that reports' ×100 shows tokens per caption, as ``print_metrics`` does.
The reference divides by zero when no caption mentions an object or no image has ground truth; here the
value is then undefined (NaN, stored as null).

NLTK data (punkt_tab, averaged_perceptron_tagger_eng, wordnet) is read from NLTK's search path, e.g. the
folder named by the ``NLTK_DATA`` environment variable.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.errors import SampleError, UserError
from harness.metrics.base import Metric, Record
from harness.stats import resample_sums
from harness.types import Prediction, Sample

# ---------------------------------------------------------------------------
# Vocabulary (LisaAnne/Hallucination data/synonyms.txt, as inlined in OPERA's chair.py; whitespace kept)
# ---------------------------------------------------------------------------

SYNONYM_ROWS: tuple[str, ...] = (
    "",  # the leading blank line of the reference table
    (
        "person, girl, boy, man, woman, kid, child, chef, baker, people, adult, rider, children, baby, "
        "worker, passenger, sister, biker, policeman, cop, officer, lady, cowboy, bride, groom, male, "
        "female, guy, traveler, mother, father, gentleman, pitcher, player, skier, snowboarder, skater, "
        "skateboarder, person, woman, guy, foreigner, child, gentleman, caller, offender, coworker, "
        "trespasser, patient, politician, soldier, grandchild, serviceman, walker, drinker, doctor, "
        "bicyclist, thief, buyer, teenager, student, camper, driver, solider, hunter, shopper, villager"
    ),
    "bicycle, bike, bicycle, bike, unicycle, minibike, trike",
    "car, automobile, van, minivan, sedan, suv, hatchback, cab, jeep, coupe, taxicab, limo, taxi",
    "motorcycle, scooter,  motor bike, motor cycle, motorbike, scooter, moped",
    "airplane, jetliner, plane, air plane, monoplane, aircraft, jet, jetliner, airbus, biplane, seaplane",
    "bus, minibus, trolley",
    "train, locomotive, tramway, caboose",
    "truck, pickup, lorry, hauler, firetruck",
    (
        "boat, ship, liner, sailboat, motorboat, dinghy, powerboat, speedboat, canoe, skiff, yacht, kayak, "
        "catamaran, pontoon, houseboat, vessel, rowboat, trawler, ferryboat, watercraft, tugboat, schooner, "
        "barge, ferry, sailboard, paddleboat, lifeboat, freighter, steamboat, riverboat, battleship, "
        "steamship"
    ),
    "traffic light, street light, traffic signal, stop light, streetlight, stoplight",
    "fire hydrant, hydrant",
    "stop sign",
    "parking meter",
    "bench, pew",
    (
        "bird, ostrich, owl, seagull, goose, duck, parakeet, falcon, robin, pelican, waterfowl, heron, "
        "hummingbird, mallard, finch, pigeon, sparrow, seabird, osprey, blackbird, fowl, shorebird, "
        "woodpecker, egret, chickadee, quail, bluebird, kingfisher, buzzard, willet, gull, swan, bluejay, "
        "flamingo, cormorant, parrot, loon, gosling, waterbird, pheasant, rooster, sandpiper, crow, raven, "
        "turkey, oriole, cowbird, warbler, magpie, peacock, cockatiel, lorikeet, puffin, vulture, condor, "
        "macaw, peafowl, cockatoo, songbird"
    ),
    "cat, kitten, feline, tabby",
    (
        "dog, puppy, beagle, pup, chihuahua, schnauzer, dachshund, rottweiler, canine, pitbull, collie, pug, "
        "terrier, poodle, labrador, doggie, doberman, mutt, doggy, spaniel, bulldog, sheepdog, weimaraner, "
        "corgi, cocker, greyhound, retriever, brindle, hound, whippet, husky"
    ),
    ("horse, colt, pony, racehorse, stallion, equine, mare, foal, palomino, mustang, clydesdale, bronc, bronco"),
    "sheep, lamb, ram, lamb, goat, ewe",
    "cow, cattle, oxen, ox, calf, cattle, holstein, heifer, buffalo, bull, zebu, bison ",
    "elephant",
    "bear, panda",
    "zebra",
    "giraffe",
    "backpack, knapsack",
    "umbrella",
    "handbag, wallet, purse, briefcase",
    "tie, bow, bow tie",
    "suitcase, suit case, luggage",
    "frisbee",
    "skis, ski",
    "snowboard",
    "sports ball, ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard, longboard, skimboard, shortboard, wakeboard",
    "tennis racket, racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife, pocketknife, knive",
    "spoon",
    "bowl, container",
    "banana",
    "apple",
    "sandwich, burger, sub, cheeseburger, hamburger",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut, doughnut, bagel",
    "cake,  cheesecake, cupcake, shortcake, coffeecake, pancake",
    "chair, seat, stool",
    "couch, sofa, recliner, futon, loveseat, settee, chesterfield ",
    "potted plant, houseplant",
    "bed",
    "dining table, table, desk",
    "toilet, urinal, commode, toilet, lavatory, potty",
    "tv, monitor, televison, television",
    "laptop, computer, notebook, netbook, lenovo, macbook, laptop computer",
    "mouse",
    "remote",
    "keyboard",
    "cell phone, mobile phone, phone, cellphone, telephone, phon, smartphone, iPhone",
    "microwave",
    "oven, stovetop, stove, stove top oven",
    "toaster",
    "sink",
    "refrigerator, fridge, fridge, freezer",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear, teddybear",
    "hair drier, hairdryer",
    "toothbrush",
)
"""The synonym table, one string per line exactly as in the reference (double and trailing spaces kept)."""


def _synonym_rows() -> list[list[str]]:
    """Rows split as OPERA's ``chair.py`` splits them: ``line.strip().split(", ")``."""
    return [line.strip().split(", ") for line in SYNONYM_ROWS]


SYNONYMS: dict[str, str] = {entry: row[0] for row in _synonym_rows() for entry in row}
"""Every table entry (quirky ones included) -> its node word."""

NODE_WORDS: tuple[str, ...] = tuple(row[0] for row in _synonym_rows() if row[0])
"""The 80 node words (COCO category names as CHAIR spells them), in table order."""

_ANIMALS = ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "animal", "cub")
# fmt: off
_SELF_DOUBLE_WORDS = (
    "motor bike", "motor cycle", "air plane", "traffic light", "street light", "traffic signal", "stop light",
    "fire hydrant", "stop sign", "parking meter", "suit case", "sports ball", "baseball bat", "baseball glove",
    "tennis racket", "wine glass", "hot dog", "cell phone", "mobile phone", "teddy bear", "hair drier",
    "potted plant", "bow tie", "laptop computer", "stove top oven", "home plate", "train track",
)
# fmt: on
DOUBLE_WORDS: dict[str, str] = {
    **{word: word for word in _SELF_DOUBLE_WORDS},
    **{f"baby {animal}": animal for animal in _ANIMALS},
    **{f"adult {animal}": animal for animal in _ANIMALS},
    "passenger jet": "jet",
    "passenger train": "train",
    "bow tie": "tie",
    "toilet seat": "toilet",
    "wine glas": "wine glass",  # the lemmatiser's "glasses" -> "glas"
}
"""Lemma pairs merged into one word (later entries override earlier ones, as in the reference)."""

NLTK_DOWNLOAD = "python -m nltk.downloader punkt_tab averaged_perceptron_tagger_eng wordnet"
_NLTK_RESOURCES = {
    "punkt_tab": "tokenizers/punkt_tab/english/",
    "averaged_perceptron_tagger_eng": "taggers/averaged_perceptron_tagger_eng/",
    "wordnet": "corpora/wordnet",
}


# ---------------------------------------------------------------------------
# Caption -> objects
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CaptionObjects:
    """The COCO objects a caption mentions, as OPERA's ``caption_to_words`` returns them.

    Attributes:
        words: the mentioned synonyms, in caption order (after lemmatising and merging double words).
        node_words: the node word of each mention.
        indices: position of each mention's first token in the lemma list before merging. The reference
            computes these before dropping "seat" next to "toilet", so they can be shifted in that case;
            kept as the reference reports them.
        tokens: every token after the double-word merge, punctuation included (``len`` counts these).
    """

    words: tuple[str, ...]
    node_words: tuple[str, ...]
    indices: tuple[int, ...]
    tokens: tuple[str, ...]


def require_nltk_data() -> None:
    """Check (once per process, when found) that NLTK finds the tokenizer, tagger and WordNet data CHAIR needs.

    Raises:
        UserError: naming the missing packages, the search path and the download command.
    """
    _nltk_data_found()


@functools.cache
def _nltk_data_found() -> bool:
    import nltk

    missing = []
    for package, resource in _NLTK_RESOURCES.items():
        try:
            nltk.data.find(resource)
        except LookupError:
            missing.append(package)
    if missing:  # an exception is not cached: the next caption checks again
        raise UserError(
            f"CHAIR needs the NLTK data {', '.join(missing)}, which NLTK does not find on its search path "
            f"({', '.join(map(str, nltk.data.path))}). Download it with `{NLTK_DOWNLOAD}`, or point the "
            "NLTK_DATA environment variable at a folder that holds it."
        )
    return True


@functools.cache
def _lemmatizer() -> Any:
    from nltk.stem import WordNetLemmatizer

    return WordNetLemmatizer()


def _wordnet_pos(tag: str) -> str:
    """WordNet's part of speech for a Penn Treebank tag (``wordnet.ADJ`` etc. are these letters)."""
    if tag.startswith("J"):
        return "a"
    if tag.startswith("V"):
        return "v"
    if tag.startswith("R"):
        return "r"
    return "n"  # N..., and the reference's fallback for every other tag


def parse_caption(caption: str) -> CaptionObjects:
    """Read a caption into COCO object mentions with OPERA's algorithm (see the module docstring)."""
    require_nltk_data()
    import nltk

    lemmatizer = _lemmatizer()
    tagged = nltk.pos_tag(nltk.word_tokenize(caption.lower()))
    lemmas = [lemmatizer.lemmatize(word, pos=_wordnet_pos(tag)) for word, tag in tagged]
    tokens, starts = [], []
    position = 0
    while position < len(lemmas):
        starts.append(position)
        pair = " ".join(lemmas[position : position + 2])
        if pair in DOUBLE_WORDS:
            tokens.append(DOUBLE_WORDS[pair])
            position += 2
        else:
            tokens.append(lemmas[position])
            position += 1
    words = tokens
    if "toilet" in words and "seat" in words:  # "the seat of the toilet" is no chair
        words = [word for word in words if word != "seat"]
    # the reference pairs the filtered words with the unfiltered start positions
    indices = [starts[i] for i, word in enumerate(words) if word in SYNONYMS]
    mentions = [word for word in words if word in SYNONYMS]
    return CaptionObjects(
        words=tuple(mentions),
        node_words=tuple(SYNONYMS[word] for word in mentions),
        indices=tuple(indices),
        tokens=tuple(tokens),
    )


def caption_to_objects(caption: str) -> list[str]:
    """Node words of the COCO objects a caption mentions, in order, repetitions kept.

    The chair task builds each image's ground truth as the set of these over its COCO captions, joined
    with `category_node_word` of its instance annotations.
    """
    return list(parse_caption(caption).node_words)


def category_node_word(category_name: str) -> str:
    """The node word of a COCO category name (``instances_*.json`` ``categories[].name``).

    Raises:
        ValueError: the name is not in the synonym table.
    """
    try:
        return SYNONYMS[category_name]
    except KeyError:
        raise ValueError(f"COCO category {category_name!r} is not in the CHAIR synonym table") from None


# ---------------------------------------------------------------------------
# Metric
# ---------------------------------------------------------------------------


class Chair(Metric):
    """CHAIR_s, CHAIR_i, recall and length of generated captions against each image's COCO objects.

    ``Sample.target``: ``{"objects": [node words]}`` (COCO instance categories ∪ objects of the COCO
    captions; an image without ground truth has ``[]``). ``Prediction.text``: the caption.

    Raises:
        SampleError (per sample): a non-string caption or a malformed ``objects`` list.
        UserError: the NLTK data is missing (raised on the first caption; it names the download command).
    """

    name = "chair"
    higher_is_better = {"CHAIR_s": False, "CHAIR_i": False, "recall": True, "len": True}
    definitions = {
        "CHAIR_s": "share of captions that mention at least one object absent from the image (OPERA chair.py)",
        "CHAIR_i": "hallucinated object mentions / all object mentions (repetitions counted)",
        "recall": "distinct ground-truth objects mentioned / ground-truth objects, summed over captions",
        "len": "0.01 x mean tokens per caption after the double-word merge (x100 = tokens per caption)",
    }

    def __init__(self) -> None:
        super().__init__()

    def score(self, sample: Sample, prediction: Prediction) -> Record:
        if not isinstance(prediction.text, str):
            raise SampleError(f"caption must be a string, got {type(prediction.text).__name__}")
        objects = sample.target.get("objects")
        if not isinstance(objects, list) or not all(isinstance(word, str) for word in objects):
            raise SampleError(f"target 'objects' must be a list of node words, got {objects!r}"[:200])
        truth = set(objects)
        parsed = parse_caption(prediction.text)
        hallucinated = [
            [word, node] for word, node in zip(parsed.words, parsed.node_words, strict=True) if node not in truth
        ]
        recalled = sorted({node for node in parsed.node_words if node in truth})
        return {
            "mentions": len(parsed.node_words),
            "hallucinations": len(hallucinated),
            "recalled": len(recalled),
            "ground_truth": len(truth),
            "tokens": len(parsed.tokens),
            "mentioned_objects": list(parsed.node_words),
            "hallucinated_words": hallucinated,
        }

    def sample_values(self, record: Record) -> dict[str, float]:
        mentions, truth = record["mentions"], record["ground_truth"]
        return {
            "CHAIR_s": float(record["hallucinations"] > 0),
            "CHAIR_i": record["hallucinations"] / mentions if mentions else 0.0,
            "recall": record["recalled"] / truth if truth else 0.0,
            "tokens": float(record["tokens"]),
        }

    @staticmethod
    def _columns(records: Sequence[Record]) -> np.ndarray:
        return np.array(
            [
                [
                    r["hallucinations"] > 0,
                    r["hallucinations"],
                    r["mentions"],
                    r["recalled"],
                    r["ground_truth"],
                    r["tokens"],
                ]
                for r in records
            ],
            dtype=float,
        ).reshape(len(records), 6)

    @staticmethod
    def _values(sums: np.ndarray, count: int) -> dict[str, np.ndarray]:
        flagged, hallucinations, mentions, recalled, truth, tokens = (sums[..., i] for i in range(6))
        with np.errstate(divide="ignore", invalid="ignore"):
            return {
                "CHAIR_s": flagged / count,
                "CHAIR_i": np.where(mentions > 0, hallucinations / mentions, np.nan),
                "recall": np.where(truth > 0, recalled / truth, np.nan),
                "len": 0.01 * tokens / count,
            }

    def aggregate(self, records: Sequence[Record]) -> dict[str, float]:
        if not records:
            return {key: float("nan") for key in self.higher_is_better}
        values = self._values(self._columns(records).sum(axis=0), len(records))
        return {key: float(value) for key, value in values.items()}

    def resampled(self, records: Sequence[Record], draws: np.ndarray) -> dict[str, np.ndarray]:
        if not records:
            return {}
        return self._values(resample_sums(draws, self._columns(records)), draws.shape[1])


__all__ = [
    "DOUBLE_WORDS",
    "NLTK_DOWNLOAD",
    "NODE_WORDS",
    "SYNONYMS",
    "SYNONYM_ROWS",
    "CaptionObjects",
    "Chair",
    "caption_to_objects",
    "category_node_word",
    "parse_caption",
    "require_nltk_data",
]
