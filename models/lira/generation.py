"""Batched decoding for LIRA: greedy with a KV cache (with ILVC chunks injected mid-generation) and beam search.

The original decodes one request at a time: `base_generate` (ILVC, GCG, CHAIR), transformers 4.37's greedy
`generate` (referring segmentation, greedy VQA) and its beam search (POPE, 5 beams) (lira-model.md §7.2, §13).
These functions decode many requests at once and give each request the tokens it gets alone.

**Batching scheme: in-sequence padding.** Each prompt is prefilled alone (so its cache and first-token logits
never depend on the batch); the rows' caches are then stacked, front-padded to the longest. Every later step
feeds every active row a chunk of the same length ``n``: one token, or, for a row that just produced
``<image_id>``, the ILVC chunk ``[<image_id>, crop tokens, " <p>"]``. Shorter chunks are padded at their front, so
each row's real tokens end at the last position (where the next-token logits are read). Padding positions are
masked as keys for every query; real positions get their own position ids, counting only the row's real tokens.
When anything is padded, the attention mask is built here as an explicit 4-D mask (causal AND key-is-real, plus
each position attending to itself, which keeps padding queries finite), so a row attends to exactly what it would
attend to alone; otherwise transformers' own causal mask is used. Finished rows leave the batch (their cache rows
are dropped), so a long answer does not keep short ones busy.

**What is exactly batch-independent.** Batched kernels sum in another order than single-row ones, so batched
hidden states differ from batch-size-1 ones by rounding, and a mask pixel whose logit is within rounding of 0 could
flip. So the state at a watched token (`[SEG]`) is recomputed canonically: the row alone, from its own prompt
cache, over everything it was fed after the prompt, in one pass. Masks, probes and the token chosen at that step
come from this canonical state, which is the same whatever the batch (and the batch size); it differs from the
original's token-by-token state by rounding only. Other tokens are argmax decisions on batched logits, equal to
batch size 1 unless two logits tie within rounding (never seen in the tests).

**Beam search** reproduces transformers 4.37.2's `beam_search` + `BeamSearchScorer` for one request (the
original runs batch size 1): log-softmax scores in float32, the min-new-tokens rule on EOS, top ``2·num_beams``
candidates, EOS candidates of rank < ``num_beams`` become finished hypotheses scored by ``sum / (length + 1)``,
the heuristic `is_done`, and a stop word checked on the first running beam only (4.37's
``StoppingCriteriaList`` returns one bool computed on ``input_ids[0]``); at the end the running beams join the
hypotheses unless the request was done. Requests are batched as ``num_beams`` rows each.

Stop words follow xtuner's ``StopWordStoppingCriteria``: the decoded generated text with ``\\r`` and ``\\n``
removed ends with the word.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import DynamicCache, LlamaForCausalLM

Decode = Callable[[Sequence[int]], str]
"""Token ids → text (`InternLM2Tokenizer.decode` without skipping special tokens)."""
Embed = Callable[[Sequence[int]], Tensor]
"""Token ids → their `(n, H)` input embeddings."""


# ---------------------------------------------------------------------------
# One decoder step over a batch
# ---------------------------------------------------------------------------


class StepOutput(NamedTuple):
    """What one step returns for every row, at the row's last position.

    Attributes:
        hidden: `(B, H)` last-layer hidden state after the final norm (what `[SEG]` decoding reads).
        logits: `(B, V)` the LM head applied to `hidden`.
        layers: when asked for, per layer `(B, H)`: index 0 the input embeddings, then each decoder layer's
            output; the last entry is `hidden` (already normed), as transformers' `hidden_states`.
    """

    hidden: Tensor
    logits: Tensor
    layers: tuple[Tensor, ...] | None


class DecoderStep(Protocol):
    """A causal language model driven step by step on input embeddings with a cache (see `LlamaDecoderStep`)."""

    def new_cache(self) -> Any: ...

    def stack(self, caches: Sequence[Any]) -> Any:
        """One batch cache from single-row caches, each front-padded to the longest (the inputs are not changed)."""
        ...

    def __call__(
        self, embeds: Tensor, key_mask: Tensor, positions: Tensor, cache: Any, *, layers: bool
    ) -> StepOutput: ...


def attention_mask_4d(key_mask: Tensor, query_length: int, implementation: str, dtype: torch.dtype) -> Tensor:
    """The `(B, 1, q, K)` mask of a step whose ``query_length`` queries are the last positions of ``key_mask``.

    A query may attend to a key at or before its own position that is real (``key_mask``), and always to itself
    (padding queries then see only themselves instead of nothing). Boolean (True = attend) for ``sdpa``; additive
    (0 or the dtype's minimum, as transformers builds it) for ``eager``.
    """
    keys = key_mask.shape[1]
    query_positions = torch.arange(keys - query_length, keys, device=key_mask.device)
    key_positions = torch.arange(keys, device=key_mask.device)
    causal = key_positions[None, :] <= query_positions[:, None]
    itself = key_positions[None, :] == query_positions[:, None]
    allowed = ((causal[None] & key_mask[:, None, :].bool()) | itself[None])[:, None]
    if implementation == "sdpa":
        return allowed
    if implementation == "eager":
        return torch.zeros(allowed.shape, dtype=dtype, device=key_mask.device).masked_fill(
            ~allowed, torch.finfo(dtype).min
        )
    raise ValueError(f"attention implementation {implementation!r} is not supported (use 'eager' or 'sdpa')")


class LlamaDecoderStep:
    """`DecoderStep` of LIRA's language model (`LlamaForCausalLM`); the LM head runs on last positions only."""

    def __init__(self, language_model: LlamaForCausalLM) -> None:
        self.language_model = language_model

    def new_cache(self) -> DynamicCache:
        return DynamicCache(config=self.language_model.config)

    def stack(self, caches: Sequence[DynamicCache]) -> DynamicCache:
        lengths = [cache.get_seq_length() for cache in caches]
        width = max(lengths)
        stacked = self.new_cache()
        for index in range(len(caches[0].layers)):
            keys, values = [], []
            for cache, length in zip(caches, lengths, strict=True):
                layer = cache.layers[index]
                keys.append(F.pad(layer.keys, (0, 0, width - length, 0)))
                values.append(F.pad(layer.values, (0, 0, width - length, 0)))
            stacked.update(torch.cat(keys), torch.cat(values), index)
        return stacked

    def __call__(
        self, embeds: Tensor, key_mask: Tensor, positions: Tensor, cache: DynamicCache, *, layers: bool
    ) -> StepOutput:
        lm = self.language_model
        mask = None  # nothing padded: transformers' own causal mask (and sdpa's fused causal kernels)
        if not bool(key_mask.all()):
            mask = attention_mask_4d(key_mask, embeds.shape[1], lm.config._attn_implementation, embeds.dtype)
        out = lm.model(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            output_hidden_states=layers,
        )
        hidden = out.last_hidden_state[:, -1]
        per_layer = tuple(state[:, -1] for state in out.hidden_states) if layers else None
        return StepOutput(hidden, lm.lm_head(hidden), per_layer)


def stop_word_hit(text: str, stop_words: Sequence[str]) -> bool:
    """xtuner's ``StopWordStoppingCriteria`` on decoded text: ``\\r``/``\\n`` removed, then ends with a word."""
    if not stop_words:
        return False
    text = text.replace("\r", "").replace("\n", "")
    return any(text[-len(word) :] == word for word in stop_words if word)


def prefill(step: DecoderStep, prompt: Tensor) -> tuple[Any, StepOutput]:
    """Run one `(L, H)` prompt alone; returns its cache and outputs (rows of size 1)."""
    length = prompt.shape[0]
    cache = step.new_cache()
    key_mask = torch.ones(1, length, dtype=torch.bool, device=prompt.device)
    positions = torch.arange(length, device=prompt.device)[None]
    return cache, step(prompt[None], key_mask, positions, cache, layers=False)


class _Batch:
    """Rows decoded together: their stacked cache, which keys are real, and each row's next position id."""

    def __init__(self, step: DecoderStep, caches: Sequence[Any], lengths: Sequence[int], like: Tensor) -> None:
        self.step = step
        self.cache = step.stack(caches)
        width = max(lengths)
        self.key_mask = torch.zeros(len(lengths), width, dtype=torch.bool, device=like.device)
        for row, length in enumerate(lengths):
            self.key_mask[row, width - length :] = True
        self.next_position = list(lengths)
        self.hidden_size, self.dtype, self.device = like.shape[-1], like.dtype, like.device

    def run(self, chunks: Sequence[Tensor]) -> StepOutput:
        """Feed one chunk `(n_i, H)` per row (front-padded to the longest) and return the step's outputs."""
        width = max(chunk.shape[0] for chunk in chunks)
        embeds = torch.zeros(len(chunks), width, self.hidden_size, dtype=self.dtype, device=self.device)
        real = torch.zeros(len(chunks), width, dtype=torch.bool, device=self.device)
        positions = torch.zeros(len(chunks), width, dtype=torch.long, device=self.device)
        for row, chunk in enumerate(chunks):
            length = chunk.shape[0]
            start = self.next_position[row]
            embeds[row, width - length :] = chunk
            real[row, width - length :] = True
            positions[row, width - length :] = torch.arange(start, start + length, device=self.device)
            self.next_position[row] = start + length
        self.key_mask = torch.cat([self.key_mask, real], dim=1)
        return self.step(embeds, self.key_mask, positions, self.cache, layers=False)

    def select(self, rows: Sequence[int]) -> None:
        """Keep (or repeat) the given rows, in this order, for the next steps."""
        index = torch.tensor(list(rows), dtype=torch.long, device=self.device)
        self.cache.reorder_cache(index)
        self.key_mask = self.key_mask.index_select(0, index)
        self.next_position = [self.next_position[row] for row in rows]


def canonical_step(step: DecoderStep, prompt_cache: Any, fed: Sequence[Tensor], *, layers: bool) -> StepOutput:
    """The state after ``fed`` (everything given after the prompt), computed for the row alone in one pass from its
    prompt cache (which is left unchanged): the same value whatever batch the row was decoded in."""
    cache = step.stack([prompt_cache])
    chunk = torch.cat(list(fed))
    start = prompt_cache.get_seq_length()
    key_mask = torch.ones(1, start + chunk.shape[0], dtype=torch.bool, device=chunk.device)
    positions = torch.arange(start, start + chunk.shape[0], device=chunk.device)[None]
    return step(chunk[None], key_mask, positions, cache, layers=layers)


# ---------------------------------------------------------------------------
# Greedy decoding
# ---------------------------------------------------------------------------


class GreedyHooks:
    """Per-request callbacks of `greedy_decode`; the defaults do nothing."""

    def on_fed(self, token: int, index: int, output: StepOutput, row: int) -> None:
        """A watched ``token`` (generated at ``index``) was fed; ``output`` rows ``row`` hold its states."""

    def on_token(self, token: int, finished: bool) -> Tensor | None:
        """``token`` was generated; return the `(n, H)` chunk to feed next instead of its embedding, or None."""
        return None


@dataclass
class GreedyRequest:
    """One request of `greedy_decode`.

    Attributes:
        prompt: `(L, H)` prompt embeddings (visual tokens spliced in).
        max_new_tokens: generated tokens at most (injected chunks do not count).
        min_new_tokens: while fewer tokens were generated, `suppressed` tokens get logit -inf (transformers'
            ``MinNewTokensLengthLogitsProcessor`` on the EOS ids).
        end_tokens: generation ends after producing one of these (included in the output).
        suppressed: see ``min_new_tokens``.
        stop_words: xtuner stop words, checked on the decoded generated tokens after every step.
        watch: tokens whose feeding step is reported to ``hooks.on_fed``.
        layers: ask for per-layer states at watched steps.
        hooks: the request's callbacks.
    """

    prompt: Tensor
    max_new_tokens: int
    min_new_tokens: int = 0
    end_tokens: frozenset[int] = frozenset()
    suppressed: frozenset[int] = frozenset()
    stop_words: tuple[str, ...] = ()
    watch: frozenset[int] = frozenset()
    layers: bool = False
    hooks: GreedyHooks = field(default_factory=GreedyHooks)


def suppress(scores: Tensor, request: GreedyRequest, generated: int) -> None:
    """transformers' ``MinNewTokensLengthLogitsProcessor``: the suppressed tokens get -inf, in place, while fewer
    than ``min_new_tokens`` tokens were generated."""
    if generated < request.min_new_tokens and request.suppressed:
        scores[list(request.suppressed)] = -float("inf")


@torch.no_grad()
def greedy_decode(
    step: DecoderStep, embed: Embed, decode: Decode, requests: Sequence[GreedyRequest]
) -> list[list[int]]:
    """Greedy decoding of ``requests`` together; returns each request's generated token ids."""
    generated: list[list[int]] = [[] for _ in requests]
    active = [r for r, request in enumerate(requests) if request.max_new_tokens > 0]
    if not active:
        return generated
    caches, outputs = zip(*(prefill(step, requests[r].prompt) for r in active), strict=True)
    prompt_caches = {r: cache for r, cache in zip(active, caches, strict=True) if requests[r].watch}
    lengths = [requests[r].prompt.shape[0] for r in active]
    batch = _Batch(step, caches, lengths, requests[active[0]].prompt)
    del caches
    output = StepOutput(torch.cat([o.hidden for o in outputs]), torch.cat([o.logits for o in outputs]), None)
    fed: dict[int, list[Tensor]] = {r: [] for r in active}
    last_token: dict[int, int | None] = dict.fromkeys(active)
    while True:
        logits = output.logits.float().clone()
        for slot, r in enumerate(active):
            suppress(logits[slot], requests[r], len(generated[r]))
        choices = logits.argmax(-1).tolist()  # one transfer for the batch
        keep: list[int] = []
        next_chunks: list[Tensor] = []
        plain: list[tuple[int, int]] = []  # (position in next_chunks, token) to embed together
        for slot, r in enumerate(active):
            request, tokens = requests[r], generated[r]
            token = choices[slot]
            if last_token[r] is not None and last_token[r] in request.watch:
                canonical = canonical_step(step, prompt_caches[r], fed[r], layers=request.layers)
                scores = canonical.logits[0].float().clone()
                suppress(scores, request, len(tokens))
                token = int(scores.argmax())
                request.hooks.on_fed(last_token[r], len(tokens) - 1, canonical, 0)  # type: ignore[arg-type]
            tokens.append(token)
            finished = (
                token in request.end_tokens
                or len(tokens) >= request.max_new_tokens
                or stop_word_hit(decode(tokens), request.stop_words)
            )
            chunk = request.hooks.on_token(token, finished)
            if finished:
                continue
            keep.append(slot)
            if chunk is None:
                plain.append((len(next_chunks), token))
                next_chunks.append(logits.new_empty(0))
                last_token[r] = token
            else:
                next_chunks.append(chunk)
                last_token[r] = None
        if plain:
            embedded = embed([token for _, token in plain])
            for (position, _), row_embedding in zip(plain, embedded, strict=True):
                next_chunks[position] = row_embedding[None]
        if not keep:
            return generated
        if len(keep) < len(active):
            batch.select(keep)
            active = [active[slot] for slot in keep]
        for r, chunk in zip(active, next_chunks, strict=True):
            if r in prompt_caches:
                fed[r].append(chunk)
        output = batch.run(next_chunks)


# ---------------------------------------------------------------------------
# Beam search (transformers 4.37.2)
# ---------------------------------------------------------------------------


class BeamHypotheses:
    """transformers 4.37's n-best list of finished hypotheses (length penalty 1, ``early_stopping=False``)."""

    def __init__(self, num_beams: int) -> None:
        self.num_beams = num_beams
        self.beams: list[tuple[float, list[int]]] = []
        self.worst_score = 1e9

    def __len__(self) -> int:
        return len(self.beams)

    def add(self, tokens: list[int], sum_logprobs: float, generated_len: int) -> None:
        score = sum_logprobs / generated_len
        if len(self) < self.num_beams or score > self.worst_score:
            self.beams.append((score, tokens))
            if len(self) > self.num_beams:
                ranked = sorted((s, index) for index, (s, _) in enumerate(self.beams))
                del self.beams[ranked[0][1]]
                self.worst_score = ranked[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs: float, cur_len: int) -> bool:
        if len(self) < self.num_beams:
            return False
        return self.worst_score >= best_sum_logprobs / cur_len

    def best(self) -> list[int]:
        return sorted(self.beams, key=lambda beam: beam[0]).pop()[1]


@dataclass
class BeamRequest:
    """One request of `beam_search_decode` (``eos_tokens`` as transformers' ``eos_token_id`` list)."""

    prompt: Tensor
    num_beams: int
    max_new_tokens: int
    min_new_tokens: int = 0
    eos_tokens: tuple[int, ...] = ()
    stop_words: tuple[str, ...] = ()


class _BeamState:
    def __init__(self, request: BeamRequest, device: torch.device) -> None:
        self.request = request
        beams = request.num_beams
        self.scores = torch.full((beams,), -1e9, dtype=torch.float32, device=device)
        self.scores[0] = 0.0
        self.sequences: list[list[int]] = [[] for _ in range(beams)]
        self.hypotheses = BeamHypotheses(beams)
        self.done = False

    def advance(self, logits: Tensor) -> list[int]:
        """One 4.37 beam step on `(num_beams, V)` logits; returns the source beam of each new beam."""
        request, beams = self.request, self.request.num_beams
        scores = torch.log_softmax(logits.float(), dim=-1)
        if len(self.sequences[0]) < request.min_new_tokens:
            scores[:, list(request.eos_tokens)] = -float("inf")
        scores = (scores + self.scores[:, None]).view(-1)
        vocab = logits.shape[-1]
        top_scores, top_ids = torch.topk(scores, max(2, 1 + len(request.eos_tokens)) * beams, largest=True, sorted=True)
        cur_len = len(self.sequences[0]) + 1
        new_scores, new_tokens, sources = [], [], []
        for rank, (score, flat) in enumerate(zip(top_scores.tolist(), top_ids.tolist(), strict=True)):
            source, token = flat // vocab, flat % vocab
            if token in request.eos_tokens:
                if rank >= beams:
                    continue
                self.hypotheses.add(list(self.sequences[source]), score, cur_len)
            else:
                new_scores.append(score)
                new_tokens.append(token)
                sources.append(source)
            if len(sources) == beams:
                break
        self.done = self.done or self.hypotheses.is_done(float(top_scores.max()), cur_len)
        self.scores = torch.tensor(new_scores, dtype=torch.float32, device=self.scores.device)
        self.sequences = [[*self.sequences[source], token] for source, token in zip(sources, new_tokens, strict=True)]
        return sources

    def result(self) -> list[int]:
        if not self.done:
            for tokens, score in zip(self.sequences, self.scores.tolist(), strict=True):
                self.hypotheses.add(tokens, score, len(tokens))
        return self.hypotheses.best()


@torch.no_grad()
def beam_search_decode(
    step: DecoderStep, embed: Embed, decode: Decode, requests: Sequence[BeamRequest]
) -> list[list[int]]:
    """Beam search of ``requests`` together (each as transformers 4.37 alone); returns each best hypothesis
    (without the EOS token that finished it)."""
    if not requests:
        return []
    first = requests[0].prompt
    for request in requests:
        if request.num_beams < 2 or request.max_new_tokens < 1:
            raise ValueError("beam search needs num_beams >= 2 and max_new_tokens >= 1")
    states = [_BeamState(request, first.device) for request in requests]
    caches, outputs = zip(*(prefill(step, request.prompt) for request in requests), strict=True)
    batch = _Batch(step, caches, [request.prompt.shape[0] for request in requests], first)
    del caches
    repeats = [r for r, request in enumerate(requests) for _ in range(request.num_beams)]
    batch.select(repeats)
    logits = torch.cat([outputs[r].logits for r in repeats])
    active = list(range(len(requests)))
    while True:
        offsets, rows, finished_any = 0, [], False
        next_tokens: list[int] = []
        still: list[int] = []
        for r in active:
            state, beams = states[r], requests[r].num_beams
            sources = state.advance(logits[offsets : offsets + beams])
            request = requests[r]
            stop = (
                state.done
                or len(state.sequences[0]) >= request.max_new_tokens
                or stop_word_hit(decode(state.sequences[0]), request.stop_words)
            )
            if stop:
                finished_any = True
            else:
                still.append(r)
                rows.extend(offsets + source for source in sources)
                next_tokens.extend(sequence[-1] for sequence in state.sequences)
            offsets += beams
        if not still:
            break
        if finished_any or rows != list(range(offsets)):
            batch.select(rows)
        active = still
        logits = batch.run(list(embed(next_tokens)[:, None])).logits
    return [state.result() for state in states]


__all__ = [
    "BeamHypotheses",
    "BeamRequest",
    "DecoderStep",
    "GreedyHooks",
    "GreedyRequest",
    "LlamaDecoderStep",
    "StepOutput",
    "attention_mask_4d",
    "beam_search_decode",
    "greedy_decode",
    "stop_word_hit",
]
