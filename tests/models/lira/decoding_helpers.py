"""Scripted stand-ins for LIRA's language model in decoding tests (`models.lira.generation.DecoderStep`).

Rows are told apart by their cache (prefill order, then the stacking and reordering the decoder does), and
logical steps by the position id of a row's last real input, so the canonical recomputation of a watched step
(the row alone, everything after the prompt in one pass) sees the same scripted answer as the batched step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from models.lira.generation import StepOutput


def seed_of(round_: int, row: int, index: int) -> int:
    """Seed of the scripted hidden state of token ``index`` of ``row`` in decoding round ``round_``."""
    return 10_000 * round_ + 100 * row + index


class RowCache:
    """Per row: its id and the real inputs it was fed (embeddings)."""

    def __init__(self, rows: list[int] | None = None, inputs: list[list[Tensor]] | None = None) -> None:
        self.rows = rows
        self.inputs = inputs

    def get_seq_length(self) -> int:
        assert self.inputs is not None and len(self.inputs) == 1
        return sum(chunk.shape[0] for chunk in self.inputs[0])

    def reorder_cache(self, index: Tensor) -> None:
        assert self.rows is not None and self.inputs is not None
        self.rows = [self.rows[i] for i in index.tolist()]
        self.inputs = [list(self.inputs[i]) for i in index.tolist()]


class ScriptedStep:
    """Emits ``scripts[round][row][k]`` as the k-th token of a row; every new prefill round (a `greedy_decode` call)
    takes the next list of scripts. Records each row's real inputs per batched call (``fed``) and its hidden state
    per emitted token (``hidden``: a fixed random vector per (round, row, k))."""

    def __init__(self, scripts: Sequence[Sequence[Sequence[int]]], vocab_size: int, hidden_size: int) -> None:
        self.scripts = scripts
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        self.round = -1
        self.prefilled = 0
        self.emitted: dict[tuple[int, int, int], int] = {}  # (round, row, last position) -> script index
        self.fed: dict[tuple[int, int], list[Tensor]] = {}  # (round, row) -> real chunks of batched calls
        self.calls = 0

    def new_cache(self) -> RowCache:
        return RowCache()

    def stack(self, caches: Sequence[RowCache]) -> RowCache:
        rows = [row for cache in caches for row in cache.rows or []]
        inputs = [list(chunks) for cache in caches for chunks in cache.inputs or []]
        return RowCache(rows, inputs)

    def hidden(self, row: int, index: int) -> Tensor:
        generator = torch.Generator().manual_seed(seed_of(self.round, row, index))
        return torch.randn(self.hidden_size, generator=generator)

    def __call__(self, embeds: Tensor, key_mask: Tensor, positions: Tensor, cache: RowCache, *, layers: bool):
        self.calls += 1
        width = embeds.shape[1]
        if cache.rows is None:  # a prefill: one new row
            if self.prefilled == 0:
                self.round += 1
                self.prefilled = len(self.scripts[self.round])
            cache.rows = [len(self.scripts[self.round]) - self.prefilled]
            cache.inputs = [[]]
            self.prefilled -= 1
            fresh = True
        else:
            fresh = False
        hidden, logits = [], []
        for slot, row in enumerate(cache.rows):
            real = key_mask[slot, -width:]
            chunk = embeds[slot][real]
            cache.inputs[slot].append(chunk)  # type: ignore[index]
            last = int(positions[slot, -1])
            key = (self.round, row, last)
            if key not in self.emitted:
                done = sum(1 for (r, w, _) in self.emitted if r == self.round and w == row)
                self.emitted[key] = done
                if not fresh:
                    self.fed.setdefault((self.round, row), []).append(chunk)
            index = self.emitted[key]
            token = self.scripts[self.round][row][index]
            scores = torch.full((self.vocab_size,), -10.0)
            scores[token] = 10.0
            logits.append(scores)
            hidden.append(self.hidden(row, index))
        states = None
        if layers:
            states = tuple(torch.stack(hidden) * (k + 1) for k in range(3))
        return StepOutput(torch.stack(hidden), torch.stack(logits), states)


class TableStep:
    """A language model given as a table: the fed token sequence (tokens are read back from one-hot embeddings)
    -> next-token probabilities; logits are their logarithms."""

    def __init__(self, table: Mapping[tuple[int, ...], Mapping[int, float]], vocab_size: int) -> None:
        self.table, self.vocab_size = table, vocab_size
        self.calls = 0

    def embed(self, tokens: Sequence[int]) -> Tensor:
        return torch.eye(self.vocab_size)[list(tokens)]

    def new_cache(self) -> RowCache:
        return RowCache()

    def stack(self, caches: Sequence[RowCache]) -> RowCache:
        return RowCache([0] * len(caches), [list(chunks) for cache in caches for chunks in cache.inputs or []])

    def __call__(self, embeds: Tensor, key_mask: Tensor, positions: Tensor, cache: RowCache, *, layers: bool):
        self.calls += 1
        width = embeds.shape[1]
        if cache.inputs is None:
            cache.rows, cache.inputs = [0], [[]]
        logits = []
        for slot in range(embeds.shape[0]):
            cache.inputs[slot].append(embeds[slot][key_mask[slot, -width:]])
            tokens = tuple(torch.cat(cache.inputs[slot]).argmax(-1).tolist())
            probabilities = self.table[tokens]
            row = torch.full((self.vocab_size,), -1e4)
            for token, probability in probabilities.items():
                row[token] = math.log(probability)
            logits.append(row)
        stacked = torch.stack(logits)
        return StepOutput(stacked, stacked, None)


def text_of(letters: Mapping[int, str]) -> Callable[[Sequence[int]], str]:
    return lambda tokens: "".join(letters[token] for token in tokens)
