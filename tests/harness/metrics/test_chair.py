"""CHAIR: OPERA's caption parsing and synonym quirks by hand, hand-worked metrics, and 250 random captions
against a literal transcription of OPERA's ``chair.py``. Needs the NLTK data: NLTK_DATA, by default the
bundled ../shared/nltk_data beside the repository."""

import os
import sys
from pathlib import Path

BUNDLED_NLTK_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "nltk_data"  # ../shared/nltk_data
if "NLTK_DATA" not in os.environ and BUNDLED_NLTK_DATA.is_dir():
    os.environ["NLTK_DATA"] = str(BUNDLED_NLTK_DATA)
    if "nltk" in sys.modules:  # imported earlier: its search path was fixed at import
        sys.modules["nltk"].data.path.insert(0, str(BUNDLED_NLTK_DATA))

import nltk  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from nltk.corpus import wordnet  # noqa: E402
from nltk.stem import WordNetLemmatizer  # noqa: E402

from harness.errors import SampleError, UserError  # noqa: E402
from harness.metrics import chair  # noqa: E402
from harness.metrics.chair import (  # noqa: E402
    NODE_WORDS,
    SYNONYM_ROWS,
    SYNONYMS,
    Chair,
    caption_to_objects,
    category_node_word,
    parse_caption,
)
from harness.types import Prediction, Sample  # noqa: E402


@pytest.mark.parametrize(
    ("caption", "objects"),
    [
        # "motor bike" is a double word but its table entry is " motor bike"; " cheesecake" likewise
        ("A man riding a horse next to a motor bike and a cheesecake.", ["person", "horse"]),
        ("A baby bird sits on a toilet seat.", ["bird", "toilet"]),  # "baby" does not fire person
        ("The seat of the toilet is up.", ["toilet"]),  # seat is dropped when toilet is mentioned
        ("A seat in the park.", ["chair"]),
        ("Two wine glasses and a hot dog sit on the dining table.", ["wine glass", "hot dog", "dining table"]),
        ("A passenger train on the train track near home plate.", ["train"]),
        ("He holds an iPhone.", []),  # the table's "iPhone" never matches lower-cased text
        ("A dog. Two cats! A sofa?", ["dog", "cat", "couch"]),  # several sentences
        ("A café with a dog 🐶 and a naïve cat", ["dog", "cat"]),  # unicode
        ("", []),
        ("A sunny day at the beach.", []),
    ],
)
def test_caption_objects_by_hand(caption, objects):
    assert caption_to_objects(caption) == objects


def test_parse_keeps_reference_tokens_and_indices():
    parsed = parse_caption("A baby bird and a hot dog.")
    assert parsed.tokens == ("a", "bird", "and", "a", "hot dog", ".")  # double words are one token
    assert parsed.words == ("bird", "hot dog") and parsed.indices == (1, 5)  # lemma positions before merging
    # OPERA pairs the seat-filtered words with unfiltered positions: "toilet" (lemma 4) is reported at 3
    assert parse_caption("the seat of the toilet").indices == (3,)


def test_vocabulary_quirks():
    assert len(NODE_WORDS) == 80 and NODE_WORDS[0] == "person" and NODE_WORDS[-1] == "toothbrush"
    assert SYNONYMS[" motor bike"] == "motorcycle" and "motor bike" not in SYNONYMS
    assert SYNONYMS[" cheesecake"] == "cake" and "cheesecake" not in SYNONYMS
    assert SYNONYMS["iPhone"] == "cell phone" and "iphone" not in SYNONYMS
    assert SYNONYMS[""] == ""  # the table's leading blank line
    assert SYNONYMS["bison"] == "cow" and SYNONYMS["chesterfield"] == "couch"  # trailing spaces are stripped
    assert category_node_word("dining table") == "dining table" and category_node_word("tv") == "tv"
    with pytest.raises(ValueError, match="not in the CHAIR synonym table"):
        category_node_word("television set")


def _sample(objects):
    return Sample(sample_id="s", image="x.jpg", target={"objects": sorted(objects)})


def _run(pairs):
    metric = Chair()
    for index, (caption, objects) in enumerate(pairs):
        metric.add(index, metric.score(_sample(objects), Prediction(text=caption)))
    return metric, metric.compute()


def test_metrics_by_hand():
    metric, values = _run(
        [
            ("A man riding a horse.", {"person", "dog"}),  # mentions person, horse; horse hallucinated; 6 tokens
            ("A dog and a dog.", {"dog"}),  # mentions dog twice, both right; 6 tokens
            ("A sunny day.", set()),  # no mention, no ground truth; 4 tokens
        ]
    )
    assert values["CHAIR_s"] == 1 / 3
    assert values["CHAIR_i"] == 1 / 4
    assert values["recall"] == 2 / 3  # {person} of 2, {dog} of 1
    assert values["len"] == pytest.approx(0.01 * 16 / 3, abs=1e-15)
    first = metric.records()[0]
    assert first["hallucinated_words"] == [["horse", "horse"]]
    assert metric.sample_values(first) == {"CHAIR_s": 1.0, "CHAIR_i": 0.5, "recall": 0.5, "tokens": 6.0}


def test_no_objects_mentioned_leaves_chair_i_undefined():
    _, values = _run([("A sunny day.", {"dog"})])
    assert values["CHAIR_s"] == 0.0 and values["recall"] == 0.0
    assert np.isnan(values["CHAIR_i"])
    _, values = _run([("A dog.", set())])  # no ground truth: every mention hallucinated, recall undefined
    assert values["CHAIR_s"] == 1.0 and values["CHAIR_i"] == 1.0 and np.isnan(values["recall"])


def test_bad_input():
    with pytest.raises(SampleError, match="caption must be a string"):
        Chair().score(_sample({"dog"}), Prediction(text=None))  # type: ignore[arg-type]
    with pytest.raises(SampleError, match="'objects' must be a list"):
        Chair().score(Sample(sample_id="s", image="x", target={"objects": "dog"}), Prediction(text="A dog"))


def test_missing_nltk_data_names_the_download_command(monkeypatch, tmp_path):
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    chair._nltk_data_found.cache_clear()
    with pytest.raises(UserError) as error:
        caption_to_objects("A dog.")
    chair._nltk_data_found.cache_clear()
    message = str(error.value)
    assert "python -m nltk.downloader punkt_tab averaged_perceptron_tagger_eng wordnet" in message
    assert "punkt_tab, averaged_perceptron_tagger_eng, wordnet" in message and "NLTK_DATA" in message


# ---------------------------------------------------------------------------
# Literal transcription of OPERA chair.py (CHAIR.__init__, caption_to_words, compute_chair)
# ---------------------------------------------------------------------------


class OperaChair:
    def __init__(self):
        synonyms = "\n".join(SYNONYM_ROWS).splitlines()
        synonyms = [s.strip().split(", ") for s in synonyms]
        self.mscoco_objects = []
        self.inverse_synonym_dict = {}
        for synonym in synonyms:
            self.mscoco_objects.extend(synonym)
            for s in synonym:
                self.inverse_synonym_dict[s] = synonym[0]
        coco_double_words = ["motor bike", "motor cycle", "air plane", "traffic light", "street light",
                             "traffic signal", "stop light", "fire hydrant", "stop sign", "parking meter",
                             "suit case", "sports ball", "baseball bat", "baseball glove", "tennis racket",
                             "wine glass", "hot dog", "cell phone", "mobile phone", "teddy bear", "hair drier",
                             "potted plant", "bow tie", "laptop computer", "stove top oven", "hot dog", "teddy bear",
                             "home plate", "train track"]  # fmt: skip
        animal_words = ["bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe",
                        "animal", "cub"]  # fmt: skip
        vehicle_words = ["jet", "train"]
        self.double_word_dict = {}
        for double_word in coco_double_words:
            self.double_word_dict[double_word] = double_word
        for animal_word in animal_words:
            self.double_word_dict[f"baby {animal_word}"] = animal_word
            self.double_word_dict[f"adult {animal_word}"] = animal_word
        for vehicle_word in vehicle_words:
            self.double_word_dict[f"passenger {vehicle_word}"] = vehicle_word
        self.double_word_dict["bow tie"] = "tie"
        self.double_word_dict["toilet seat"] = "toilet"
        self.double_word_dict["wine glas"] = "wine glass"

    def get_wordnet_pos(self, tag):
        if tag.startswith("J"):
            return wordnet.ADJ
        elif tag.startswith("V"):
            return wordnet.VERB
        elif tag.startswith("N"):
            return wordnet.NOUN
        elif tag.startswith("R"):
            return wordnet.ADV
        else:
            return None

    def caption_to_words(self, caption):
        words = nltk.word_tokenize(caption.lower())
        tagged_sent = nltk.pos_tag(words)
        lemmas_sent = []
        wnl = WordNetLemmatizer()
        for tag in tagged_sent:
            wordnet_pos = self.get_wordnet_pos(tag[1]) or wordnet.NOUN
            lemmas_sent.append(wnl.lemmatize(tag[0], pos=wordnet_pos))
        words = lemmas_sent
        i = 0
        double_words = []
        idxs = []
        while i < len(words):
            idxs.append(i)
            double_word = " ".join(words[i : i + 2])
            if double_word in self.double_word_dict:
                double_words.append(self.double_word_dict[double_word])
                i += 2
            else:
                double_words.append(words[i])
                i += 1
        words = double_words
        if ("toilet" in words) & ("seat" in words):
            words = [word for word in words if word != "seat"]
        idxs = [idxs[idx] for idx, word in enumerate(words) if word in set(self.mscoco_objects)]
        words = [word for word in words if word in set(self.mscoco_objects)]
        node_words = []
        for word in words:
            node_words.append(self.inverse_synonym_dict[word])
        return words, node_words, idxs, double_words

    def compute_chair(self, caps, gts):
        num_caps = num_hallucinated_caps = hallucinated_word_count = coco_word_count = len_caps = 0.0
        num_recall_gt_objects = num_gt_objects = 0.0
        sentences = []
        for cap, gt_objects in zip(caps, gts, strict=True):
            words, node_words, idxs, raw_words = self.caption_to_words(cap)
            metrics = {"CHAIRs": 0, "CHAIRi": 0.0, "Recall": 0.0}
            coco_word_count += len(node_words)
            hallucinated = False
            hallucinated_words = []
            recall_gt_objects = set()
            for word, node_word, _idx in zip(words, node_words, idxs, strict=True):
                if node_word not in gt_objects:
                    hallucinated_word_count += 1
                    hallucinated_words.append((word, node_word))
                    hallucinated = True
                else:
                    recall_gt_objects.add(node_word)
            num_caps += 1
            len_caps += len(raw_words)
            if hallucinated:
                num_hallucinated_caps += 1
            num_gt_objects += len(gt_objects)
            num_recall_gt_objects += len(recall_gt_objects)
            metrics["CHAIRs"] = int(hallucinated)
            if len(words) > 0:
                metrics["CHAIRi"] = len(hallucinated_words) / float(len(words))
            if len(gt_objects) > 0:
                metrics["Recall"] = len(recall_gt_objects) / len(gt_objects)
            sentences.append((node_words, idxs, raw_words, metrics))
        overall = {
            "CHAIRs": num_hallucinated_caps / num_caps,
            "CHAIRi": hallucinated_word_count / coco_word_count if coco_word_count else float("nan"),
            "Recall": num_recall_gt_objects / num_gt_objects if num_gt_objects else float("nan"),
            "Len": 0.01 * len_caps / num_caps,
        }
        return sentences, overall


WORDS = [
    "a", "the", "two", "man", "woman", "people", "riding", "sitting", "on", "next", "to", "with", "near", "of",
    "baby", "adult", "passenger", "bird", "dog", "dogs", "puppies", "cat", "horses", "toilet", "seat", "seats",
    "wine", "glass", "glasses", "hot", "motor", "bike", "bikes", "train", "track", "jet", "home", "plate", "bow",
    "tie", "teddy", "bear", "cell", "phone", "iPhone", "laptop", "computer", "dining", "table", "tables", "tv",
    "cheesecake", "cake", "stove", "top", "oven", "traffic", "light", "street", "is", "are", "red", "café", "and",
    ".", ",", "!", "?", "'s", "sofa", "couch", "skis", "ski", "sports", "ball", "fire", "hydrant", "surfboards",
]  # fmt: skip


def test_random_captions_match_opera_chair():
    rng = np.random.default_rng(21)
    reference = OperaChair()
    captions, truths = [], []
    for _ in range(250):
        words = [str(w) for w in rng.choice(WORDS, size=int(rng.integers(0, 25)))]
        if words and rng.random() < 0.5:
            words[0] = words[0].capitalize()
        captions.append(" ".join(words))
        truths.append(set(rng.choice(NODE_WORDS, size=int(rng.integers(0, 6)), replace=False).tolist()))
    sentences, overall = reference.compute_chair(captions, truths)
    metric = Chair()
    for index, (caption, truth, (node_words, idxs, raw_words, per_caption)) in enumerate(
        zip(captions, truths, sentences, strict=True)
    ):
        parsed = parse_caption(caption)
        assert (list(parsed.node_words), list(parsed.indices), list(parsed.tokens)) == (node_words, idxs, raw_words)
        record = metric.score(_sample(truth), Prediction(text=caption))
        metric.add(index, record)
        values = metric.sample_values(record)
        assert (values["CHAIR_s"], values["CHAIR_i"], values["recall"]) == (
            per_caption["CHAIRs"],
            pytest.approx(per_caption["CHAIRi"], abs=1e-15),
            pytest.approx(per_caption["Recall"], abs=1e-15),
        )
    values = metric.compute()
    assert values["CHAIR_s"] == pytest.approx(overall["CHAIRs"], abs=1e-15)
    assert values["CHAIR_i"] == pytest.approx(overall["CHAIRi"], abs=1e-15)
    assert values["recall"] == pytest.approx(overall["Recall"], abs=1e-15)
    assert values["len"] == pytest.approx(overall["Len"], abs=1e-15)
    draws = rng.integers(0, 250, size=(20, 250))
    fast = metric.resampled(metric.records(), draws)
    for row, draw in enumerate(draws):
        for key, value in metric.aggregate([metric.records()[i] for i in draw]).items():
            assert fast[key][row] == pytest.approx(value, abs=1e-12, nan_ok=True)
