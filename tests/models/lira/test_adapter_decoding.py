"""The adapter's per-kind decoding with a scripted language model (lira-model.md §7.2, §14; metrics.md §2.1, §4.5):
the ILVC loop feeds back an independently computed highlight crop and pairs phrases with the right masks, GCG
retries its prompts, CHAIR strips LIRA's tags, referring segmentation stops at ``<image_id>`` and uses the first
fed ``[SEG]``; and `[SEG]` probes on the real `lira-tiny` language model equal the LM head on the captured state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from decoding_helpers import ScriptedStep, seed_of
from PIL import Image

from harness import masks as rle
from harness.metrics.captions import clean_gcg_caption
from harness.types import GenerationSettings, Request
from harness.vocabulary import WORD_LISTS
from models.lira.adapter import LiraEngine
from models.lira.assets.tiny_tokenizer import FOLDER
from models.lira.checkpoint.lira import build_lira_tiny
from models.lira.generation import LlamaDecoderStep
from models.lira.processor import TileSetting, preprocess_internvl
from models.lira.tokenizer import load_lira_tokenizer

SEG, P_START, P_END, IMAGE_ID, IM_END, EOS, BOS = 300, 301, 302, 305, 289, 2, 1
WIDTH, HEIGHT = 40, 30


@pytest.fixture(scope="module")
def engine() -> LiraEngine:
    return LiraEngine(build_lira_tiny(seed=3), load_lira_tokenizer(FOLDER, expected_ids=None))


@pytest.fixture(scope="module")
def image_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pixels = np.random.default_rng(0).integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("images") / "scene.png"
    Image.fromarray(pixels).save(path)
    return path


def tokens(engine: LiraEngine, text: str) -> list[int]:
    return engine.tokenizer.encode(text, add_special_tokens=False)


def request(image: Path, kind: str, prompt: str = "Describe.", **options) -> Request:
    family = {"grounded_caption": "gcg", "caption": "chair", "referring_segmentation": "refcoco"}[kind]
    generation = options.pop("generation", GenerationSettings(max_new_tokens=40))
    return Request(
        task="t",
        task_family=family,
        sample_id="s",
        kind=kind,
        image=str(image),
        prompt=prompt,
        generation=generation,
        **options,
    )


def box_mask(top: int, left: int, bottom: int, right: int, hole: tuple[int, int] | None = None) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    mask[top:bottom, left:right] = 1
    if hole is not None:
        mask[hole] = 0
    return mask


def expected_crop(image: np.ndarray, mask: np.ndarray) -> Image.Image:
    """The highlight crop worked out here: the mask's bounding box, every pixel at 30 % brightness (PIL blends with
    black in C float and truncates), the mask's own pixels at full brightness."""
    rows, columns = np.nonzero(mask)
    top, bottom, left, right = rows.min(), rows.max() + 1, columns.min(), columns.max() + 1
    crop = image[top:bottom, left:right]
    dimmed = (crop.astype(np.float32) * np.float32(0.3)).astype(np.uint8)
    inside = mask[top:bottom, left:right].astype(bool)
    dimmed[inside] = crop[inside]
    return Image.fromarray(dimmed)


def expected_chunk(engine: LiraEngine, crop: Image.Image) -> torch.Tensor:
    tile = preprocess_internvl(crop, TileSetting(1, 1), tile_size=56).pixel_values
    assert tile.shape == (1, 3, 56, 56)
    crop_tokens = engine.model.encode_local_crops(tile)[0]
    continuation = engine.tokenizer.encode(" <p>")[1:]  # the original's encode(" <p>")[1:]
    embed = engine.model.embed_tokens
    return torch.cat([embed(torch.tensor([[IMAGE_ID]]))[0], crop_tokens, embed(torch.tensor([continuation]))[0]])


def scripted(engine: LiraEngine, monkeypatch: pytest.MonkeyPatch, scripts, masks) -> ScriptedStep:
    """Install a scripted language model; the n-th `[SEG]` of ``scripts[round][row]`` decodes to
    ``masks[round][row][n]`` (matched through the scripted hidden state of the step that feeds it)."""
    step = ScriptedStep(scripts, vocab_size=306, hidden_size=64)
    monkeypatch.setattr(engine, "step", step)
    planned = []
    for round_, rows in enumerate(scripts):
        for row, script in enumerate(rows):
            positions = [k for k, token in enumerate(script) if token == SEG]
            for k, mask in zip(positions, masks[round_][row], strict=False):
                state = torch.randn(64, generator=torch.Generator().manual_seed(seed_of(round_, row, k + 1)))
                planned.append((state, mask))

    def seg_mask(hidden: torch.Tensor, encoding) -> np.ndarray:
        found = [mask for state, mask in planned if torch.equal(hidden, state)]
        assert len(found) == 1, "a [SEG] state that the script did not plan"
        return found[0]

    monkeypatch.setattr(engine, "seg_mask", seg_mask)
    return step


@torch.no_grad()
def test_ilvc_feeds_the_highlight_crop_and_pairs_phrases_with_kept_masks(
    engine: LiraEngine, image_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    red_dog, near, blue_car, dot = (tokens(engine, text) for text in (" red dog ", " near", " blue car ", "."))
    row0 = [SEG, IMAGE_ID, *red_dog, P_END, SEG, *near, SEG, IMAGE_ID, *blue_car, P_END, SEG, *dot, IM_END]
    # row 1: an <image_id> before any [SEG] is fed as a plain token; its crop comes at another step than row 0's
    row1 = [IMAGE_ID, *tokens(engine, " a"), SEG, IMAGE_ID, *blue_car, P_END, SEG, IM_END]
    a = box_mask(5, 8, 20, 30, hole=(10, 12))
    b = box_mask(0, 0, 3, 3)
    c = box_mask(12, 1, 29, 9)
    d = box_mask(20, 20, 25, 39)
    e = box_mask(2, 30, 27, 38, hole=(15, 33))
    step = scripted(engine, monkeypatch, [[row0, row1]], [[[a, b, c, d], [e, b]]])

    answers = engine.predict([request(image_path, "grounded_caption"), request(image_path, "grounded_caption")])

    image = np.asarray(Image.open(image_path).convert("RGB"))
    for row, kept in ((0, (a, c)), (1, (e,))):
        crops = [chunk for chunk in step.fed[(0, row)] if chunk.shape[0] > 1]
        assert len(crops) == len(kept)
        for chunk, mask in zip(crops, kept, strict=True):
            assert torch.equal(chunk, expected_chunk(engine, expected_crop(image, mask)))
        assert [rle.decode(m).tolist() for m in answers[row].masks] == [m.tolist() for m in kept]
    assert answers[0].phrases == ("red dog", "blue car")
    assert answers[1].phrases == ("blue car",)
    assert clean_gcg_caption(answers[0].text) == "red dog near blue car ."  # the phrase's own trailing space
    assert answers[0].text == " <p> red dog </p>[SEG] near <p> blue car </p>[SEG]. <|im_end|>"
    assert answers[0].metadata["prompt_index"] == 0 and answers[0].generated_tokens == len(row0)
    # row 1's first <image_id> had no mask: no " <p>" after it, no crop; "[SEG]<image_id>" is removed
    assert answers[1].text == "<image_id> a <p> blue car </p>[SEG] <|im_end|>"


@torch.no_grad()
def test_gcg_tries_the_retry_prompts_until_a_mask_is_kept(
    engine: LiraEngine, image_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dog = tokens(engine, " dog ")
    rounds = [
        [[*tokens(engine, " a"), IM_END], [SEG, IMAGE_ID, *dog, P_END, IM_END]],  # row 1 succeeds at once
        [[SEG, *dog, IM_END]],  # a mask, but none kept (no <image_id>)
        [[SEG, IMAGE_ID, *dog, P_END, SEG, IM_END]],
    ]
    mask = box_mask(1, 1, 9, 9)
    step = scripted(engine, monkeypatch, rounds, [[[], [mask]], [[mask]], [[mask, mask]]])
    retries = ("Second prompt?", "Third prompt?", "Fourth prompt?")
    answers = engine.predict(
        [
            request(image_path, "grounded_caption", "First prompt?", retry_prompts=retries),
            request(image_path, "grounded_caption", "Only prompt?", retry_prompts=retries),
        ]
    )
    assert [answer.metadata["prompt_index"] for answer in answers] == [2, 0]
    assert [len(answer.masks) for answer in answers] == [1, 1]
    assert answers[0].phrases == ("dog",)
    assert step.round == 2  # three decoding rounds; the third prompt answered


@torch.no_grad()
def test_chair_caption_drops_lira_tags(engine: LiraEngine, image_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, red_dog, dot = (tokens(engine, text) for text in (" a", " red dog ", "."))
    script = [*a, SEG, IMAGE_ID, *red_dog, P_END, SEG, *dot, IM_END]
    scripted(engine, monkeypatch, [[script]], [[[box_mask(3, 3, 9, 9), box_mask(0, 0, 2, 2)]]])
    (answer,) = engine.predict([request(image_path, "caption")])
    # raw: " a[SEG]<image_id> <p> red dog </p>[SEG]. <|im_end|>" -> tags removed, "   " and "  " collapsed once
    assert answer.text == "a red dog ."
    assert answer.masks == () and answer.phrases == ()


@torch.no_grad()
def test_referring_segmentation_first_fed_seg_and_stop_words(
    engine: LiraEngine, image_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sure = tokens(engine, "sure")
    first, second = box_mask(2, 2, 10, 10), box_mask(10, 10, 20, 20)
    scripts = [
        [
            [*sure, SEG, IMAGE_ID, *sure, SEG, IM_END],  # stops at <image_id>: no crop, one mask
            [SEG, *sure, SEG, IM_END],  # two [SEG]: the first only
            [*sure, SEG],  # [SEG] as the last token (max_new_tokens): never fed, no mask
            [*sure, EOS, SEG],  # EOS ends generation
        ]
    ]
    step = scripted(engine, monkeypatch, scripts, [[[first], [first, second], [], []]])
    limited = GenerationSettings(max_new_tokens=len(sure) + 1)
    answers = engine.predict(
        [
            request(image_path, "referring_segmentation", "Please segment the dog."),
            request(image_path, "referring_segmentation", "Please segment the dog."),
            request(image_path, "referring_segmentation", "Please segment the dog.", generation=limited),
            request(image_path, "referring_segmentation", "Please segment the dog."),
        ]
    )
    assert [len(answer.masks) for answer in answers] == [1, 1, 0, 0]
    assert rle.decode(answers[0].masks[0]).tolist() == first.tolist()
    assert rle.decode(answers[1].masks[0]).tolist() == first.tolist()
    assert [answer.generated_tokens - len(sure) for answer in answers] == [2, 3, 1, 1]
    assert all(chunk.shape[0] == 1 for chunk in step.fed[(0, 0)])  # no crop chunk after <image_id>
    assert answers[0].text == "sure [SEG] <image_id>"  # the original's decode joins added tokens with spaces
    # referring segmentation prompts start with BOS (refcoco_lira.py); ILVC and VQA prompts do not
    encoding = engine.encode_image(str(image_path), TileSetting(4, 12))
    bos = engine.model.embed_tokens(torch.tensor([[BOS]]))[0, 0]
    assert torch.equal(engine.prompt_embeddings("Please segment the dog.", encoding, bos=True)[0], bos)
    assert not torch.equal(engine.prompt_embeddings("Please segment the dog.", encoding, bos=False)[0], bos)


class ForcingStep(LlamaDecoderStep):
    """The real language model, except that the token produced after the prompt is forced to ``first`` and the
    one after that to [SEG]; records every output."""

    def __init__(self, language_model, first: int) -> None:
        super().__init__(language_model)
        self.first = first
        self.outputs: list[tuple[torch.Tensor, object]] = []

    def __call__(self, embeds, key_mask, positions, cache, *, layers):
        output = super().__call__(embeds, key_mask, positions, cache, layers=layers)
        self.outputs.append((positions.clone(), output))
        logits = output.logits.clone()
        for row in range(embeds.shape[0]):
            generated = int(positions[row, -1]) - self.prompt_length + 1
            if generated in (0, 1):
                logits[row, self.first if generated == 0 else SEG] = 1e4
        return output._replace(logits=logits)


@torch.no_grad()
def test_probes_equal_the_lm_head_on_the_captured_seg_state(
    engine: LiraEngine, image_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lm = engine.model.language_model
    step = ForcingStep(lm, first=tokens(engine, "sure")[0])
    monkeypatch.setattr(engine, "step", step)
    monkeypatch.setattr(engine, "probe_layers", True)
    the_request = request(
        image_path,
        "referring_segmentation",
        "Please segment the dog.",
        want_probes=True,
        generation=GenerationSettings(max_new_tokens=4),
    )
    encoding = engine.encode_image(str(image_path), engine.tile_setting(the_request))
    prompt = engine.prompt_embeddings(the_request.prompt, encoding, bos=True)
    step.prompt_length = prompt.shape[0]
    (answer,) = engine.predict([the_request])

    (probe,) = answer.probes
    assert probe.position == 1  # [SEG] is the second generated token
    # the [SEG] step: the canonical one-row pass over the two tokens fed after the prompt
    seg_position = prompt.shape[0] + 1
    output = next(o for p, o in step.outputs if p.shape == (1, 2) and int(p[0, -1]) == seg_position)
    hidden, layers = output.hidden[0], [state[0] for state in output.layers]
    logits = lm.lm_head(hidden)
    ids = engine.prober.vocabulary.token_ids
    assert set(ids) == set(WORD_LISTS) and ids["color"]["red"] == engine.tokenizer.encode("red")[1]
    for name, words in ids.items():
        assert probe.word_logits[name] == {word: float(logits[index]) for word, index in words.items()}
    top_values, top_ids = torch.topk(logits, 10)
    assert [(t.token, t.logit) for t in probe.top_tokens] == [
        (engine.tokenizer.id_to_token(int(i)), float(v)) for v, i in zip(top_values, top_ids, strict=True)
    ]
    assert len(probe.layer_word_logits) == lm.config.num_hidden_layers + 1
    for index, state in enumerate(layers):
        head = lm.lm_head(state if index == len(layers) - 1 else lm.model.norm(state))
        assert probe.layer_word_logits[index]["color"] == {w: float(head[i]) for w, i in ids["color"].items()}
    assert probe.layer_word_logits[-1] == probe.word_logits
    # and the captured state is the model's: an uncached pass over the whole sequence gives it
    fed = engine.model.embed_tokens(torch.tensor([[step.first, SEG]]))[0]
    full = lm(inputs_embeds=torch.cat([prompt, fed])[None], output_hidden_states=True)
    torch.testing.assert_close(full.hidden_states[-1][0, -1], hidden, rtol=0, atol=1e-5)
    # the mask of that [SEG] is in the prediction, at the image size
    assert len(answer.masks) == 1 and answer.masks[0]["size"] == [HEIGHT, WIDTH]
