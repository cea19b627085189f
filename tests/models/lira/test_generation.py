"""Batched decoding (`models.lira.generation`): the attention mask, greedy decoding with chunks injected at different
steps in different rows (against uncached one-row recomputation on `lira-tiny`'s language model), the canonical
state at watched tokens, transformers 4.37's beam search on a hand-worked table, and xtuner's stop words."""

from __future__ import annotations

import pytest
import torch
from decoding_helpers import TableStep, text_of

from models.lira.checkpoint.lira import build_lira_tiny
from models.lira.generation import (
    BeamRequest,
    GreedyHooks,
    GreedyRequest,
    LlamaDecoderStep,
    StepOutput,
    attention_mask_4d,
    beam_search_decode,
    greedy_decode,
    stop_word_hit,
)
from models.lira.model import LiraModel


@pytest.fixture(scope="module")
def model() -> LiraModel:
    return build_lira_tiny(seed=31)


def embedder(model: LiraModel):
    return lambda tokens: model.embed_tokens(torch.tensor([list(tokens)]))[0]


def test_attention_mask_4d_by_hand() -> None:
    # two rows, 3 cached keys + 2 new queries; row 0's key 0 and row 1's new query 3 are padding
    key_mask = torch.tensor([[0, 1, 1, 1, 1], [1, 1, 1, 0, 1]], dtype=torch.bool)
    allowed = attention_mask_4d(key_mask, 2, "sdpa", torch.float32)
    assert allowed.shape == (2, 1, 2, 5)
    assert allowed[0, 0].int().tolist() == [[0, 1, 1, 1, 0], [0, 1, 1, 1, 1]]
    # the padding query (position 3) sees itself; the next query skips the padding key
    assert allowed[1, 0].int().tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 0, 1]]
    additive = attention_mask_4d(key_mask, 2, "eager", torch.float32)
    assert additive.dtype == torch.float32
    assert torch.equal(additive == 0, allowed)
    assert bool((additive[~allowed] == torch.finfo(torch.float32).min).all())
    with pytest.raises(ValueError, match="flash"):
        attention_mask_4d(key_mask, 2, "flash_attention_2", torch.float32)


def test_stop_words_follow_xtuner() -> None:
    assert stop_word_hit("yes<|im_end|>", ("<|im_end|>",))
    assert stop_word_hit("a <image_id>\n\r", ("<|im_end|>", "<image_id>"))  # newlines are removed first
    assert not stop_word_hit("<|im_end|> more", ("<|im_end|>",))
    assert not stop_word_hit("anything", ())


class Injector(GreedyHooks):
    """Feeds ``chunk`` and then the token generated at step ``at`` instead of that token alone (ILVC-like: the
    original feeds ``[<image_id>, crop, " <p>"]``); records watched steps."""

    def __init__(self, embed, at: int | None = None, chunk: torch.Tensor | None = None) -> None:
        self.embed, self.at, self.chunk, self.count = embed, at, chunk, 0
        self.fed: list[tuple[int, int, torch.Tensor, torch.Tensor]] = []

    def feed(self, step: int, token: int) -> torch.Tensor:
        plain = self.embed([token])
        return torch.cat([self.chunk, plain]) if step == self.at else plain

    def on_fed(self, token: int, index: int, output: StepOutput, row: int) -> None:
        self.fed.append((token, index, output.hidden[row].clone(), output.logits[row].clone()))

    def on_token(self, token: int, finished: bool) -> torch.Tensor | None:
        self.count += 1
        return self.feed(self.count - 1, token) if self.count - 1 == self.at and not finished else None


def reference_greedy(model: LiraModel, prompt: torch.Tensor, steps: int, hooks: Injector):
    """One row, no cache: the whole sequence is recomputed for every token; returns the tokens and the final
    hidden state at the last position after each step."""
    sequence, tokens, states = prompt, [], []
    for step in range(steps):
        out = model.language_model(inputs_embeds=sequence[None], output_hidden_states=True)
        tokens.append(int(out.logits[0, -1].argmax()))
        states.append(out.hidden_states[-1][0, -1])
        sequence = torch.cat([sequence, hooks.feed(step, tokens[-1])])
    return tokens, states


@torch.no_grad()
def test_batched_greedy_with_injected_chunks_equals_each_row_alone(model: LiraModel) -> None:
    embed = embedder(model)
    g = torch.Generator().manual_seed(5)
    prompts = [torch.randn(n, 64, generator=g) for n in (7, 12, 3, 9)]
    chunks = [torch.randn(n, 64, generator=g) for n in (5, 1, 2, 11)]
    injections = [1, None, 3, 0]  # the step whose token gets a chunk in front (rows differ on purpose)
    steps = [6, 4, 8, 5]
    hooks = [Injector(embed, at, chunk) for at, chunk in zip(injections, chunks, strict=True)]
    requests = [
        GreedyRequest(prompt=p, max_new_tokens=s, hooks=h) for p, s, h in zip(prompts, steps, hooks, strict=True)
    ]
    tokens = greedy_decode(LlamaDecoderStep(model.language_model), embed, lambda t: "", requests)
    for row, (prompt, count) in enumerate(zip(prompts, steps, strict=True)):
        expected, _ = reference_greedy(model, prompt, count, Injector(embed, injections[row], chunks[row]))
        assert tokens[row] == expected, row


@torch.no_grad()
def test_watched_steps_use_the_canonical_state_of_the_row_alone(model: LiraModel) -> None:
    """Watching every token makes every step canonical: states equal an uncached recomputation of the row."""
    embed = embedder(model)
    g = torch.Generator().manual_seed(6)
    prompts = [torch.randn(n, 64, generator=g) for n in (4, 10)]
    chunk = torch.randn(3, 64, generator=g)
    hooks = [Injector(embed, 2, chunk), Injector(embed)]
    requests = [
        GreedyRequest(prompt=p, max_new_tokens=5, watch=frozenset(range(306)), hooks=h)
        for p, h in zip(prompts, hooks, strict=True)
    ]
    tokens = greedy_decode(LlamaDecoderStep(model.language_model), embed, lambda t: "", requests)
    for row, (prompt, hook) in enumerate(zip(prompts, hooks, strict=True)):
        expected, states = reference_greedy(model, prompt, 5, Injector(embed, hook.at, hook.chunk))
        assert tokens[row] == expected
        # the step that feeds generated token k is reported with index k, except after an injected chunk (its last
        # input is no longer the token); its state is the one after that input
        reported = [k for k in range(4) if k != hook.at]
        assert [(token, index) for token, index, _, _ in hook.fed] == [(expected[k], k) for k in reported]
        for _, index, hidden, logits in hook.fed:
            torch.testing.assert_close(hidden, states[index + 1], rtol=0, atol=1e-5)
            torch.testing.assert_close(logits, model.language_model.lm_head(states[index + 1]), rtol=0, atol=1e-5)


@torch.no_grad()
def test_end_tokens_min_new_tokens_and_stop_words() -> None:
    # table LM over tokens 0 (eos), 1 'a', 2 'b', 3 'c'; the prompt is [3]
    table = {
        (3,): {0: 0.6, 1: 0.3, 2: 0.1},
        (3, 1): {2: 0.7, 0: 0.3},
        (3, 1, 2): {1: 0.9, 0: 0.1},
        (3, 1, 2, 1): {2: 0.9, 0: 0.1},
        (3, 1, 2, 1, 2): {0: 1.0},
        (3, 0): {0: 1.0},
    }
    step = TableStep(table, 4)
    text = text_of({0: "", 1: "a", 2: "b", 3: "c"})

    def run(**options) -> list[int]:
        request = GreedyRequest(prompt=step.embed([3]), **{"max_new_tokens": 10, **options})
        return greedy_decode(step, step.embed, text, [request])[0]

    assert run(end_tokens=frozenset({0})) == [0]  # EOS first, kept in the output
    assert run(end_tokens=frozenset({0}), suppressed=frozenset({0}), min_new_tokens=1) == [1, 2, 1, 2, 0]
    assert run(suppressed=frozenset({0}), min_new_tokens=1, stop_words=("bab",)) == [1, 2, 1, 2]
    assert run(suppressed=frozenset({0}), min_new_tokens=1, max_new_tokens=3) == [1, 2, 1]


# ---------------------------------------------------------------------------
# Beam search
# ---------------------------------------------------------------------------

# 0 = EOS, 1 = a, 2 = b, 3 = c; prompt [3]
BEAM_TABLE = {
    (3,): {1: 0.5, 2: 0.3, 0: 0.15, 3: 0.05},
    (3, 1): {0: 0.9, 1: 0.05, 2: 0.03, 3: 0.02},
    (3, 2): {1: 0.6, 0: 0.2, 2: 0.12, 3: 0.08},
    (3, 2, 1): {1: 0.8, 2: 0.1, 0: 0.06, 3: 0.04},
    (3, 2, 2): {1: 0.8, 2: 0.1, 0: 0.06, 3: 0.04},
    (3, 2, 1, 1): {0: 1.0},
    (3, 2, 2, 1): {0: 1.0},
}


def beam(step: TableStep, **options) -> list[int]:
    request = BeamRequest(prompt=step.embed([3]), num_beams=2, eos_tokens=(0,), **options)
    return beam_search_decode(step, step.embed, text_of({0: "", 1: "a", 2: "b", 3: "c"}), [request])[0]


def test_beam_search_as_transformers_4_37_by_hand() -> None:
    """Worked by hand (natural logs):

    step 1: a -0.693, b -1.204 (EOS, rank 2, not reached).
    step 2 candidates: a+EOS -0.799 (rank 0: finished, scored -0.799 / 2 = -0.400 since the length counts the EOS),
    b+a -1.715, b+EOS -2.813 (rank 2: dropped), b+b -3.324: beams [b a], [b b]; one hypothesis (< 2: not done).
    step 3: b a a -1.938, b b a -3.547, b a b -4.018, b a EOS -4.528 (rank 3: dropped); max_new_tokens = 3 stops.
    finalize: running beams join: [b a a] -1.938 / 3 = -0.646; [b b a] -1.182 is worse than the worst of a full
    list. Best: [a] (-0.400). Scored by its length without the EOS (1) it would be -0.799 and [b a a] would win.
    """
    step = TableStep(BEAM_TABLE, 4)
    assert beam(step, max_new_tokens=3) == [1]
    assert step.calls == 3  # prefill + two steps


def test_beam_search_stop_word_is_checked_on_the_first_beam_only() -> None:
    step = TableStep(BEAM_TABLE, 4)
    assert beam(step, max_new_tokens=3, stop_words=("bb",)) == [1]  # [b b] is beam 1 at step 2: no stop
    assert step.calls == 3
    step = TableStep(BEAM_TABLE, 4)
    assert beam(step, max_new_tokens=3, stop_words=("ba",)) == [1]  # beam 0 is [b a] after step 2: stop there
    assert step.calls == 2


def test_beam_search_min_new_tokens_masks_eos_at_the_first_step() -> None:
    table = {
        (3,): {0: 0.7, 1: 0.2, 2: 0.1},
        (3, 1): {0: 0.5, 1: 0.3, 2: 0.2},
        (3, 2): {0: 0.45, 1: 0.3, 2: 0.25},
    }
    # Without it: EOS (rank 0) finishes [] at log 0.7 / 1 = -0.357, better than anything longer can be.
    assert beam(TableStep(table, 4), max_new_tokens=2) == []
    # With it, EOS is -inf at step 1: beams [a] -1.609, [b] -2.303; step 2: a+EOS -2.303 (rank 0) -> [a] scored
    # -1.151; a+a -2.813 and a+b -3.219 run on (b+EOS -3.101 has rank 2); max length: [a a] -1.406 joins,
    # [a b] -1.609 does not; best [a].
    assert beam(TableStep(table, 4), max_new_tokens=2, min_new_tokens=1) == [1]


@torch.no_grad()
def test_beam_search_batched_equals_alone_on_lira_tiny(model: LiraModel) -> None:
    step = LlamaDecoderStep(model.language_model)
    embed = embedder(model)
    g = torch.Generator().manual_seed(8)
    requests = [
        BeamRequest(prompt=torch.randn(n, 64, generator=g), num_beams=k, max_new_tokens=m, eos_tokens=(2,))
        for n, k, m in ((5, 3, 6), (9, 2, 4), (2, 3, 7))
    ]
    together = beam_search_decode(step, embed, lambda t: "", requests)
    for request, tokens in zip(requests, together, strict=True):
        assert beam_search_decode(step, embed, lambda t: "", [request])[0] == tokens
