"""`[SEG]` probes: what the LM head reads from the hidden state at a `[SEG]` token (logit lens).

LIRA's demo (`app_lira.py` ``process_logits``, lira-model.md §15.21) takes the logits of the step that feeds the
first `[SEG]` (the LM head applied to that step's last-layer state) and reads them at the id of each word of four
lists, lower-cased, keeping only words that are one token (``tokenizer.encode(word)[1:]``, i.e. without BOS).
Here the same is done at every fed `[SEG]`, with the top-k tokens of the whole vocabulary, and optionally per
layer: the final norm and the LM head applied to each layer's state at that position (index 0 = the input
embedding; the last entry is the final state, already normed, so it equals the probe's own word logits).

The default word lists are LIRA's, kept in one place for the whole project: `harness.vocabulary.WORD_LISTS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from harness.types import SegProbe, TokenScore
from models.lira.tokenizer import InternLM2Tokenizer


@dataclass(frozen=True)
class ProbeVocabulary:
    """Word lists resolved to token ids.

    Attributes:
        token_ids: list name -> word (lower-cased) -> its single token id.
        skipped: list name -> words that are not a single token (LIRA skips them too).
    """

    token_ids: Mapping[str, Mapping[str, int]]
    skipped: Mapping[str, tuple[str, ...]]

    @classmethod
    def build(cls, tokenizer: InternLM2Tokenizer, word_lists: Mapping[str, Sequence[str]]) -> ProbeVocabulary:
        """LIRA's rule: ``word.lower()``, encoded with special tokens, the first id (BOS) dropped; one id left."""
        token_ids: dict[str, dict[str, int]] = {}
        skipped: dict[str, tuple[str, ...]] = {}
        for name, words in word_lists.items():
            found: dict[str, int] = {}
            missed: list[str] = []
            for word in words:
                word = word.lower()
                ids = tokenizer.encode(word)[1:]
                if len(ids) == 1:
                    found[word] = ids[0]
                else:
                    missed.append(word)
            token_ids[name], skipped[name] = found, tuple(missed)
        return cls(token_ids, skipped)

    def read(self, logits: Tensor) -> dict[str, dict[str, float]]:
        """Word logits of one `(V,)` logit vector, per list."""
        values = logits.float()
        return {
            name: {word: float(values[index]) for word, index in words.items()}
            for name, words in self.token_ids.items()
        }


@dataclass(frozen=True)
class SegProber:
    """Builds `SegProbe` records from a `[SEG]` step's outputs.

    Attributes:
        vocabulary: the resolved word lists.
        top_k: how many top tokens of the whole vocabulary to keep (0: none).
        final_norm / lm_head: the language model's final norm and head (for per-layer probes).
        token_text: token id -> its vocabulary string.
    """

    vocabulary: ProbeVocabulary
    top_k: int
    final_norm: Callable[[Tensor], Tensor]
    lm_head: Callable[[Tensor], Tensor]
    token_text: Callable[[int], str]

    def probe(self, position: int, logits: Tensor, layers: Sequence[Tensor] | None = None) -> SegProbe:
        """The probe of the `[SEG]` generated at ``position``.

        Args:
            logits: `(V,)` the LM head on the step's final state.
            layers: per layer `(H,)` states (index 0 embeddings, last = final normed state), or None.
        """
        top: tuple[TokenScore, ...] = ()
        if self.top_k > 0:
            values, ids = torch.topk(logits.float(), min(self.top_k, logits.shape[-1]))
            top = tuple(
                TokenScore(token=self.token_text(int(i)), logit=float(v))
                for v, i in zip(values.tolist(), ids.tolist(), strict=True)
            )
        per_layer = None
        if layers is not None:
            last = len(layers) - 1
            per_layer = tuple(
                self.vocabulary.read(self.lm_head(state if index == last else self.final_norm(state)))
                for index, state in enumerate(layers)
            )
        return SegProbe(
            position=position, word_logits=self.vocabulary.read(logits), top_tokens=top, layer_word_logits=per_layer
        )


__all__ = ["ProbeVocabulary", "SegProber"]
