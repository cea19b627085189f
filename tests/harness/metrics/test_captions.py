"""Caption scores: hand-worked values, the PTB tokenizer against pycocoevalcap's, 200 random captions against
naive BLEU-4 / ROUGE-L / CIDEr-D written here, SPICE reported unavailable, and (slow) the whole
COCOEvalCap pipeline. One METEOR JVM is shared by the whole module (and process)."""

import math
import shutil
from collections import Counter

import numpy as np
import pytest
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from harness.errors import SampleError, UserError
from harness.metrics import captions
from harness.metrics.captions import CaptionScores, clean_gcg_caption, ptb_tokenize
from harness.types import Prediction, Sample


def _score(metric, pairs):
    for index, (candidate, references) in enumerate(pairs):
        sample = Sample(sample_id=str(index), image="x", target={"captions": references})
        metric.add(index, metric.score(sample, Prediction(text=candidate)))
    return metric.compute()


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("<p> A man </p> [SEG] is riding <p> a horse </p> [SEG].<|im_end|>", "A man is riding a horse ."),
        ("'quoted' text", "quoted' text"),
        ("a\nb", "ab"),  # GLaMM deletes newlines without a space
        ("x < y and z > w", "x w"),  # anything between < and > is a tag to GLaMM
        ("  spaced   out  ", "spaced out"),
    ],
)
def test_glamm_caption_cleaning(text, clean):
    assert clean_gcg_caption(text) == clean


def test_hand_worked_scores():
    metric = CaptionScores(scorers=["BLEU-4", "METEOR", "ROUGE-L", "CIDEr"])
    values = _score(metric, [("A dog runs.", ["a dog sleeps"]), ("A B C D E", ["a b c x e"])])
    # ROUGE-L: LCS 2 of 3 tokens each way for the first pair, 4 of 5 for the second: F = P = R
    assert values["ROUGE-L"] == pytest.approx((2 / 3 + 4 / 5) / 2, abs=1e-12)
    # corpus BLEU: 1-grams 2+4 of 3+5, 2-grams 1+2 of 2+4, 3-grams 0+1 of 1+3, 4-grams 0 of 0+2
    tiny, small = 1e-15, 1e-9
    product = 1.0
    for correct, guess in [(6, 8), (3, 6), (1, 4), (0, 2)]:
        product *= (correct + tiny) / (guess + small)
    ratio = (8 + tiny) / (8 + small)
    assert values["BLEU-4"] == pytest.approx(product ** (1 / 4) * math.exp(1 - 1 / ratio), rel=1e-12)


def test_identical_captions_reach_each_scorer_maximum():
    pairs = [("a dog on the grass", ["a dog on the grass"]), ("two cats under a table", ["two cats under a table"])]
    values = _score(CaptionScores(scorers=["BLEU-4", "METEOR", "ROUGE-L", "CIDEr"]), pairs)
    assert values["BLEU-4"] == pytest.approx(1.0, abs=1e-8)
    assert values["METEOR"] == pytest.approx(1.0, abs=1e-12)
    assert values["ROUGE-L"] == 1.0
    # every n-gram order present and its IDF > 0 except "a" (in both images): cosine 1, x10
    assert values["CIDEr"] == pytest.approx(10.0, abs=1e-12)


def test_edge_cases_score_without_crashing():
    pairs = [
        ("", ["a red bus"]),  # empty candidate
        ("Un café à Zürich 😀.", ["un café à zürich"]),  # unicode; the emoji is untokenizable and dropped
        ("A dog. A cat! Two birds?", ["a dog a cat two birds"]),  # several sentences
        ("!!! ...", ["something"]),  # punctuation only
    ]
    values = _score(CaptionScores(scorers=["METEOR", "ROUGE-L"]), pairs)
    assert values["ROUGE-L"] == pytest.approx((0 + 1 + 1 + 0) / 4)
    assert 0.4 < values["METEOR"] < 1.0


def test_line_breaks_do_not_shift_captions_onto_other_images():
    captions_in = {0: ["one\rtwo"], 1: ["three four"], 2: ["five\u2028six"], 3: ["seven"]}
    assert ptb_tokenize(captions_in) == {0: ["one two"], 1: ["three four"], 2: ["five six"], 3: ["seven"]}
    # pycocoevalcap's tokenizer lets Java break the line: every later caption moves to the wrong image
    reference = PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in captions_in.items()})
    assert reference[1] == ["two"]


def test_spice_is_reported_unavailable_with_its_reason():
    metric = CaptionScores(scorers=["ROUGE-L", "SPICE"])
    assert "stanford-corenlp-3.6.0.jar" in metric.definitions["SPICE"]
    with pytest.warns(RuntimeWarning, match="SPICE unavailable"):
        values = _score(metric, [("a dog", ["a dog"])])
    assert values["ROUGE-L"] == 1.0 and math.isnan(values["SPICE"])


def test_a_failing_spice_is_reported_not_raised(monkeypatch):
    import pycocoevalcap.spice.spice as spice_module

    class BrokenSpice:
        def compute_score(self, gts, res):
            raise RuntimeError("java.lang.reflect.InaccessibleObjectException")

    monkeypatch.setattr(captions, "spice_missing_reason", lambda: None)
    monkeypatch.setattr(spice_module, "Spice", BrokenSpice)
    metric = CaptionScores(scorers=["SPICE"])
    with pytest.warns(RuntimeWarning, match="InaccessibleObjectException"):
        values = _score(metric, [("a dog", ["a dog"])])
    assert math.isnan(values["SPICE"]) and "failed with RuntimeError" in metric.definitions["SPICE"]


def test_bad_input_and_missing_java(monkeypatch):
    metric = CaptionScores()
    with pytest.raises(SampleError, match="caption must be a string"):
        metric.score(Sample(sample_id="s", image="x", target={"captions": ["a"]}), Prediction(text=b"a"))  # type: ignore[arg-type]
    for bad in ([], "a dog", [1]):
        with pytest.raises(SampleError, match="'captions' must be a non-empty list of strings"):
            metric.score(Sample(sample_id="s", image="x", target={"captions": bad}), Prediction(text="a"))
    assert metric.resampled([{"candidate": "a", "references": ["a"]}], np.zeros((3, 1), int)) == {}
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="no `java` is on PATH"):
        _score(CaptionScores(scorers=["BLEU-4"]), [("a", ["a"])])
    with pytest.raises(ValueError, match="subset"):
        CaptionScores(scorers=["BLEU-5"])


# ---------------------------------------------------------------------------
# Naive scorers, written from the pycocoevalcap definitions
# ---------------------------------------------------------------------------


def ngrams(tokens, n):
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def naive_bleu4(references, candidates):
    correct, guess = [0] * 4, [0] * 4
    test_length = reference_length = 0
    for key in candidates:
        test = candidates[key][0].split()
        refs = [r.split() for r in references[key]]
        test_length += len(test)
        reference_length += min((abs(len(r) - len(test)), len(r)) for r in refs)[1]  # closest, shorter on ties
        for n in range(1, 5):
            grams = ngrams(test, n)
            best = Counter()
            for ref in refs:
                best |= ngrams(ref, n)
            correct[n - 1] += sum(min(count, best[gram]) for gram, count in grams.items())
            guess[n - 1] += max(len(test) - n + 1, 0)
    product = 1.0
    for n in range(4):
        product *= (correct[n] + 1e-15) / (guess[n] + 1e-9)
    score = product ** (1 / 4)
    ratio = (test_length + 1e-15) / (reference_length + 1e-9)
    return score * math.exp(1 - 1 / ratio) if ratio < 1 else score


def lcs(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a)):
        for j in range(len(b)):
            table[i + 1][j + 1] = table[i][j] + 1 if a[i] == b[j] else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def naive_rouge_l(references, candidates):
    scores = []
    for key in candidates:
        candidate = candidates[key][0].split(" ")
        precision = max(lcs(r.split(" "), candidate) / len(candidate) for r in references[key])
        recall = max(lcs(r.split(" "), candidate) / len(r.split(" ")) for r in references[key])
        beta = 1.2
        if precision and recall:
            scores.append((1 + beta**2) * precision * recall / (recall + beta**2 * precision))
        else:
            scores.append(0.0)
    return float(np.mean(scores))


def naive_cider_d(references, candidates, sigma=6.0):
    keys = list(candidates)
    counts = {k: [sum((ngrams(r.split(), n) for n in range(1, 5)), Counter()) for r in references[k]] for k in keys}
    frequency = Counter(gram for k in keys for gram in {g for ref in counts[k] for g in ref})
    log_images = np.log(float(len(keys)))

    def vector(cnt):
        vec = [{} for _ in range(4)]
        norm = [0.0] * 4
        length = 0
        for gram, tf in cnt.items():
            n = len(gram) - 1
            vec[n][gram] = float(tf) * (log_images - np.log(max(1.0, frequency[gram])))
            norm[n] += vec[n][gram] ** 2
            if n == 1:  # CIDEr-D's "length" counts bigrams
                length += tf
        return vec, [np.sqrt(x) for x in norm], length

    scores = []
    for k in keys:
        hyp, hyp_norm, hyp_len = vector(sum((ngrams(candidates[k][0].split(), n) for n in range(1, 5)), Counter()))
        total = np.zeros(4)
        for ref_counts in counts[k]:
            ref, ref_norm, ref_len = vector(ref_counts)
            value = np.zeros(4)
            for n in range(4):
                for gram in hyp[n]:
                    value[n] += min(hyp[n][gram], ref[n].get(gram, 0.0)) * ref[n].get(gram, 0.0)
                if hyp_norm[n] != 0 and ref_norm[n] != 0:
                    value[n] /= hyp_norm[n] * ref_norm[n]
                value[n] *= np.e ** (-((hyp_len - ref_len) ** 2) / (2 * sigma**2))
            total += value
        scores.append(np.mean(total) / len(counts[k]) * 10.0)
    return float(np.mean(scores))


WORDS = ["a", "A", "dog", "Dog", "cat", "runs", "on", "the", "grass", "two", "people", "café", "Zürich", "red",
         "bus", "is", "parked", "near", "it's", "don't", "(big)", "man", "woman", "riding", "horse", "beach",
         "sunny", "day", "with", "an", "umbrella", "and", "a", "table"]  # fmt: skip
PUNCTUATION = [".", ",", "!", "?", ";", ":", "-", "--", "...", "'", '"', "`"]


def random_caption(rng) -> str:
    words = []
    for _ in range(int(rng.integers(0, 16))):
        words.append(str(rng.choice(WORDS)))
        if rng.random() < 0.15:
            words[-1] += str(rng.choice(PUNCTUATION))
    return " ".join(words)


def random_corpus(rng, size):
    return [
        (random_caption(rng), [random_caption(rng) or "empty" for _ in range(int(rng.integers(1, 5)))])
        for _ in range(size)
    ]


def reference_tokens(pairs):
    tokenizer = PTBTokenizer()
    references = tokenizer.tokenize({i: [{"caption": r} for r in refs] for i, (_, refs) in enumerate(pairs)})
    candidates = tokenizer.tokenize({i: [{"caption": c}] for i, (c, _) in enumerate(pairs)})
    return references, candidates


def test_ptb_tokenize_matches_pycocoevalcap_on_random_captions():
    rng = np.random.default_rng(2)
    pairs = random_corpus(rng, 200)
    references, candidates = reference_tokens(pairs)
    assert ptb_tokenize({i: list(refs) for i, (_, refs) in enumerate(pairs)}) == references
    assert ptb_tokenize({i: [c] for i, (c, _) in enumerate(pairs)}) == candidates


def test_random_corpora_match_naive_bleu_rouge_and_cider():
    rng = np.random.default_rng(4)
    for size in (200, 7, 1):
        pairs = random_corpus(rng, size)
        values = _score(CaptionScores(scorers=["BLEU-4", "ROUGE-L", "CIDEr"], clean="none"), pairs)
        references, candidates = reference_tokens(pairs)
        assert values["BLEU-4"] == pytest.approx(naive_bleu4(references, candidates), rel=1e-10, abs=1e-14)
        assert values["ROUGE-L"] == pytest.approx(naive_rouge_l(references, candidates), abs=1e-12)
        assert values["CIDEr"] == pytest.approx(naive_cider_d(references, candidates), abs=1e-10)


@pytest.mark.slow
def test_random_corpus_matches_cocoevalcap_without_spice(monkeypatch):
    """COCOEvalCap.evaluate() itself (with SPICE replaced by a stub, as it cannot run offline)."""
    import pycocoevalcap.eval as coco_eval_module
    from pycocotools.coco import COCO

    class NoSpice:
        def compute_score(self, gts, res):
            return 0.0, [0.0] * len(gts)

        def method(self):
            return "SPICE"

    monkeypatch.setattr(coco_eval_module, "Spice", NoSpice)
    rng = np.random.default_rng(9)
    pairs = random_corpus(rng, 200)
    ground_truth = COCO()
    ground_truth.dataset = {
        "images": [{"id": i} for i in range(len(pairs))],
        "annotations": [
            {"id": len(pairs) * 10 + i * 5 + j, "image_id": i, "caption": r}
            for i, (_, refs) in enumerate(pairs)
            for j, r in enumerate(refs)
        ],
    }
    ground_truth.createIndex()
    results = ground_truth.loadRes([{"image_id": i, "caption": c} for i, (c, _) in enumerate(pairs)])
    evaluator = coco_eval_module.COCOEvalCap(ground_truth, results)
    evaluator.params["image_id"] = results.getImgIds()
    evaluator.evaluate()
    values = _score(CaptionScores(scorers=["BLEU-4", "METEOR", "ROUGE-L", "CIDEr"], clean="none"), pairs)
    assert values["BLEU-4"] == pytest.approx(evaluator.eval["Bleu_4"], abs=1e-12)
    assert values["METEOR"] == pytest.approx(evaluator.eval["METEOR"], abs=1e-12)
    assert values["ROUGE-L"] == pytest.approx(evaluator.eval["ROUGE_L"], abs=1e-12)
    assert values["CIDEr"] == pytest.approx(evaluator.eval["CIDEr"], abs=1e-12)
