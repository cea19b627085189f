"""Caption quality: BLEU-4, METEOR, ROUGE-L, CIDEr (and SPICE when it can run), as COCOEvalCap computes them.

``COCOEvalCap.evaluate()`` cannot run offline (it constructs SPICE, which downloads Stanford CoreNLP), so
this calls pycocoevalcap's individual scorers on the same inputs: references and candidates are
PTB-tokenised separately (Stanford CoreNLP 3.4.1 ``PTBTokenizer -preserveLines -lowerCase``, punctuation
tokens dropped, as ``pycocoevalcap.tokenizer.PTBTokenizer`` does), then scored with ``Bleu(4)``,
``Meteor()``, ``Rouge()``, ``Cider()`` and ``Spice()``. Corpus scores are what the scorers return:
BLEU-4 is the corpus BLEU, METEOR the jar's aggregate line, CIDEr-D uses the document frequencies of the
evaluated references only (scores depend on which samples are evaluated together).

Two differences in how the tools are started, neither changing a score the reference computes:

* the tokenizer's temporary file goes to a private temporary folder instead of pycocoevalcap's package
  folder (which may be read-only), and the JVMs read and write UTF-8 whatever the locale (the reference
  run in a UTF-8 locale);
* besides ``\\n`` (which the reference replaces by a space), the line breaks ``\\r``, ``\\v``, ``\\f``,
  U+2028 and U+2029 are replaced by spaces: Java's tokenizer starts a new line on them, which in the
  reference shifts every following caption onto the wrong image.

SPICE needs ``stanford-corenlp-3.6.0.jar`` and its models jar in pycocoevalcap's ``spice/lib`` folder
(pycocoevalcap downloads them on first use). Without them, or when SPICE fails, the value is reported as
undefined with the reason in its definition, never as a crash. The Java scorers are too slow to repeat
for bootstrap resamples: `CaptionScores.resampled` opts out, so these values have no interval.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from harness.errors import SampleError, UserError
from harness.metrics.base import Metric, Record
from harness.types import Prediction, Sample

ScorerName = Literal["BLEU-4", "METEOR", "ROUGE-L", "CIDEr", "SPICE"]
SCORERS: tuple[str, ...] = get_args(ScorerName)
Cleaning = Literal["glamm", "none"]

_UTF8 = ("-Dfile.encoding=UTF-8", "-Dsun.stdout.encoding=UTF-8", "-Dstdout.encoding=UTF-8")
_LINE_BREAKS = str.maketrans({"\n": " ", "\r": " ", "\v": " ", "\f": " ", "\u2028": " ", "\u2029": " "})
_SPICE_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")


def clean_gcg_caption(text: str) -> str:
    """GLaMM's caption post-processing (``eval/gcg/infer.py``, also LIRA's ``gcg_lira.py``).

    Newlines are deleted and double spaces halved, every ``<…>`` tag (``<p>``, ``</p>``, ``<|im_end|>``,
    ...) and ``[SEG]`` removed, whitespace collapsed, then single quotes and spaces stripped at both ends.
    """
    text = text.replace("\n", "").replace("  ", " ")
    text = re.sub(r"<.*?>", "", text).replace("[SEG]", "")
    return " ".join(text.split()).strip("'").strip()


def _package_folder() -> Path:
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("caption metrics need the pycocoevalcap package (pip install pycocoevalcap)")
    return Path(next(iter(spec.submodule_search_locations)))


def _require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise UserError(
            "caption metrics run pycocoevalcap's Java tools, but no `java` is on PATH "
            "(install a Java runtime, e.g. `apt-get install default-jre-headless`)"
        )
    return java


def ptb_tokenize(captions: dict[Any, list[str]]) -> dict[Any, list[str]]:
    """Tokenise captions as ``pycocoevalcap.tokenizer.ptbtokenizer.PTBTokenizer.tokenize`` does.

    Args:
        captions: key -> list of caption strings (the reference takes ``{"caption": ...}`` dicts).

    Returns:
        key -> list of lower-cased, space-joined tokens without punctuation tokens.
    """
    from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS, STANFORD_CORENLP_3_4_1_JAR

    keys = [key for key, texts in captions.items() for _ in texts]
    if not keys:
        return {}
    sentences = "\n".join(text.translate(_LINE_BREAKS) for texts in captions.values() for text in texts)
    jar = _package_folder() / "tokenizer" / STANFORD_CORENLP_3_4_1_JAR
    with tempfile.TemporaryDirectory(prefix="attreval-ptb-") as folder:
        path = Path(folder) / "captions.txt"
        path.write_bytes(sentences.encode("utf-8"))
        command = [_require_java(), *_UTF8, "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer"]
        done = subprocess.run(
            [*command, "-preserveLines", "-lowerCase", str(path)], capture_output=True, cwd=jar.parent, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"the PTB tokenizer failed (exit {done.returncode}): {done.stderr.decode()[-500:]}")
    lines = done.stdout.decode("utf-8").split("\n")
    if len(lines) < len(keys):
        raise RuntimeError(f"the PTB tokenizer returned {len(lines)} lines for {len(keys)} captions")
    punctuation = set(PUNCTUATIONS)
    tokenised: dict[Any, list[str]] = {}
    for key, line in zip(keys, lines, strict=False):
        tokenised.setdefault(key, []).append(" ".join(w for w in line.rstrip().split(" ") if w not in punctuation))
    return tokenised


# ---------------------------------------------------------------------------
# METEOR: one JVM per process, shared by every CaptionScores (it takes ~8 s to start)
# ---------------------------------------------------------------------------

_METEOR: list[Any] = []
_METEOR_LOCK = threading.Lock()


def _start_meteor() -> Any:
    from pycocoevalcap.meteor.meteor import METEOR_JAR, Meteor

    class Utf8Meteor(Meteor):
        """pycocoevalcap's METEOR wrapper (same jar, flags and line protocol), its JVM pinned to UTF-8."""

        def __init__(self) -> None:
            self.meteor_cmd = [_require_java(), *_UTF8, "-jar", "-Xmx2G", METEOR_JAR]
            self.meteor_cmd += ["-", "-", "-stdio", "-l", "en", "-norm"]
            self.meteor_p = subprocess.Popen(
                self.meteor_cmd,
                cwd=_package_folder() / "meteor",
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            self.lock = threading.Lock()

    return Utf8Meteor()


def meteor_score(references: dict[Any, list[str]], candidates: dict[Any, list[str]]) -> float:
    """Corpus METEOR of tokenised captions through the shared METEOR process (restarted once on failure)."""
    with _METEOR_LOCK:
        try:
            return _shared_meteor_score(references, candidates)
        except (ValueError, OSError):  # the JVM died or its output went out of step: start a fresh one
            _METEOR.pop().meteor_p.kill()
        try:
            return _shared_meteor_score(references, candidates)
        except (ValueError, OSError) as error:
            _METEOR.pop().meteor_p.kill()
            raise RuntimeError(f"METEOR failed twice: {error}") from error


def _shared_meteor_score(references: dict[Any, list[str]], candidates: dict[Any, list[str]]) -> float:
    if not _METEOR:
        _METEOR.append(_start_meteor())
    return float(_METEOR[0].compute_score(references, candidates)[0])


def spice_missing_reason() -> str | None:
    """Why SPICE cannot run here, or None when its Stanford CoreNLP jars are present."""
    folder = _package_folder() / "spice" / "lib"
    missing = [name for name in _SPICE_JARS if not (folder / name).is_file()]
    if missing:
        return (
            f"SPICE unavailable: {', '.join(missing)} missing from {folder} "
            "(pycocoevalcap downloads them on first use, which needs network access)"
        )
    return None


# ---------------------------------------------------------------------------
# Metric
# ---------------------------------------------------------------------------


class CaptionScores(Metric):
    """Corpus BLEU-4, METEOR, ROUGE-L, CIDEr and SPICE of candidate captions against reference captions.

    ``Sample.target``: ``{"captions": [reference, ...]}`` (at least one); ``Prediction.text``: the
    candidate, cleaned with GLaMM's rule first when ``clean="glamm"``.

    Args:
        scorers: which of ``BLEU-4``, ``METEOR``, ``ROUGE-L``, ``CIDEr``, ``SPICE`` to report (all by default).
        clean: ``"glamm"`` (default) applies `clean_gcg_caption` to the candidate; ``"none"`` scores it as is.

    Raises:
        SampleError (per sample): a non-string candidate or a missing/empty/non-string reference list.
        UserError: Java is not installed (raised when scoring the corpus).
    """

    name = "captions"
    higher_is_better = dict.fromkeys(SCORERS, True)

    def __init__(self, scorers: Sequence[str] = SCORERS, clean: Cleaning = "glamm") -> None:
        unknown = [s for s in scorers if s not in SCORERS]
        if unknown or not scorers:
            raise ValueError(f"caption scorers must be a non-empty subset of {SCORERS}, got {list(scorers)}")
        if clean not in get_args(Cleaning):
            raise ValueError(f"caption cleaning must be one of {get_args(Cleaning)}, got {clean!r}")
        super().__init__(scorers=list(scorers), clean=clean)
        self.scorers = [s for s in SCORERS if s in scorers]
        self.clean = clean
        self.definitions = {
            "BLEU-4": "corpus BLEU with 1..4-grams (pycocoevalcap Bleu(4), closest reference length)",
            "METEOR": "METEOR 1.5 (-l en -norm) aggregate over the corpus, pycocoevalcap Meteor",
            "ROUGE-L": "mean per-sample ROUGE-L F-score with beta 1.2, pycocoevalcap Rouge",
            "CIDEr": "CIDEr-D (n=4, sigma=6, x10) with document frequencies from the evaluated references",
            "SPICE": "SPICE F-score averaged over samples, pycocoevalcap Spice",
        }
        reason = spice_missing_reason() if "SPICE" in self.scorers else None
        if reason:
            self.definitions["SPICE"] = reason

    def score(self, sample: Sample, prediction: Prediction) -> Record:
        if not isinstance(prediction.text, str):
            raise SampleError(f"caption must be a string, got {type(prediction.text).__name__}")
        references = sample.target.get("captions")
        if not isinstance(references, list) or not references or not all(isinstance(r, str) for r in references):
            raise SampleError(f"target 'captions' must be a non-empty list of strings, got {references!r}"[:200])
        candidate = clean_gcg_caption(prediction.text) if self.clean == "glamm" else prediction.text
        return {"candidate": candidate, "references": list(references)}

    def sample_values(self, record: Record) -> dict[str, float]:
        return {}

    def aggregate(self, records: Sequence[Record]) -> dict[str, float]:
        if not records:
            return dict.fromkeys(self.scorers, float("nan"))
        references = ptb_tokenize({i: list(r["references"]) for i, r in enumerate(records)})
        candidates = ptb_tokenize({i: [r["candidate"]] for i, r in enumerate(records)})
        values: dict[str, float] = {}
        for scorer in self.scorers:
            values[scorer] = self._run(scorer, references, candidates)
        return values

    def _run(self, scorer: str, references: dict[Any, list[str]], candidates: dict[Any, list[str]]) -> float:
        if scorer == "BLEU-4":
            from pycocoevalcap.bleu.bleu import Bleu

            return float(Bleu(4).compute_score(references, candidates, verbose=0)[0][3])
        if scorer == "METEOR":
            return meteor_score(references, candidates)
        if scorer == "ROUGE-L":
            from pycocoevalcap.rouge.rouge import Rouge

            return float(Rouge().compute_score(references, candidates)[0])
        if scorer == "CIDEr":
            from pycocoevalcap.cider.cider import Cider

            return float(Cider().compute_score(references, candidates)[0])
        return self._spice(references, candidates)

    def _spice(self, references: dict[Any, list[str]], candidates: dict[Any, list[str]]) -> float:
        reason = spice_missing_reason()
        if reason is None:
            try:
                from pycocoevalcap.spice.spice import Spice

                _require_java()
                return float(Spice().compute_score(references, candidates)[0])
            except Exception as error:  # SPICE is optional: any failure is reported, never raised
                reason = f"SPICE unavailable: it failed with {type(error).__name__}: {error}"[:500]
        self.definitions["SPICE"] = reason
        warnings.warn(reason, RuntimeWarning, stacklevel=2)
        return float("nan")

    def resampled(self, records: Sequence[Record], draws: np.ndarray) -> dict[str, np.ndarray]:
        """No bootstrap: the Java scorers take seconds per corpus (documented in the module docstring)."""
        return {}


__all__ = [
    "SCORERS",
    "CaptionScores",
    "Cleaning",
    "ScorerName",
    "clean_gcg_caption",
    "meteor_score",
    "ptb_tokenize",
    "spice_missing_reason",
]
