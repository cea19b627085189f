"""The tokenizer that ships with `lira-tiny` (`models/lira/assets/lira_tiny_tokenizer`): InternLM2's layout at the
`internvl2_tiny` fixture's size, ids that agree with the `lira-tiny` preset, and the same layout resized to the real
92,544 pieces (`full_size_tokenizer_folder`, used by the full-size benchmark)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sentencepiece as spm

from harness.errors import DataError
from harness.vocabulary import WORD_LISTS
from models.lira.adapter import LiraEngine
from models.lira.assets.tiny_tokenizer import FOLDER, full_size_tokenizer_folder, internlm2_layout
from models.lira.checkpoint.lira import build_lira_tiny
from models.lira.config import preset
from models.lira.tokenizer import EXPECTED_TOKEN_IDS, build_prompt, load_lira_tokenizer, tokenize_prompt

# The fixture's vocabulary of 300 (fixtures/internvl2_tiny/README.md): 291 SentencePiece pieces, the last six being
# InternLM2's <|plugin|> ... <|im_end|> <|im_start|>, then InternVL's nine tokens; LIRA's six follow at 300.
TINY_IDS = {
    "<unk>": 0,
    "<s>": 1,
    "</s>": 2,
    "<|plugin|>": 285,
    "<|im_end|>": 289,
    "<|im_start|>": 290,
    "<img>": 291,
    "</img>": 292,
    "<IMG_CONTEXT>": 293,
    "</box>": 299,
    "[SEG]": 300,
    "<p>": 301,
    "</p>": 302,
    "<region>": 303,
    "<mark>": 304,
    "<image_id>": 305,
}


@pytest.fixture(scope="module")
def tokenizer():
    return load_lira_tokenizer(FOLDER, expected_ids=TINY_IDS)


def test_layout_and_ids_agree_with_the_lira_tiny_preset(tokenizer) -> None:
    assert tokenizer.vocab_size == 291 and len(tokenizer) == 306
    config = preset("lira-tiny")
    assert len(tokenizer) == config.vision_language.text.vocab_size
    added, chat = config.added_tokens, config.vision_language.chat_tokens
    assert [tokenizer.token_to_id(t) for t in ("[SEG]", "<p>", "</p>", "<region>", "<mark>", "<image_id>")] == [
        added.seg,
        added.p_start,
        added.p_end,
        added.region,
        added.mark,
        added.image_id,
    ]
    assert (tokenizer.token_to_id("<|im_end|>"), tokenizer.token_to_id("<|im_start|>")) == (chat.im_end, chat.im_start)
    assert tokenizer.token_to_id("<IMG_CONTEXT>") == chat.img_context
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id) == (1, 2)
    LiraEngine(build_lira_tiny(seed=0), tokenizer)  # the engine's own check passes


def test_special_tokens_stay_whole_and_text_round_trips(tokenizer) -> None:
    assert tokenizer.encode("[SEG]<image_id><p>x</p>", add_special_tokens=False)[:3] == [300, 305, 301]
    prompt = build_prompt("Please segment the man on the left.")
    chunks = tokenize_prompt(tokenizer, prompt, bos=True).chunks
    assert chunks[0][:3] == (1, 290, tokenizer.encode("system", add_special_tokens=False)[0])
    for text in (
        "Please segment red cup in the middle.",
        "Is there a giraffe in the image?\nAnswer the question using a single word or phrase.",
        "What color is the motorcycle? Answer with one word. ~`{}[]|\\\\ 0123456789",
        "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型",
    ):
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert 0 not in ids  # no <unk>: the corpus covers printable ASCII and the system prompt
        assert tokenizer.sp_model.decode(ids) == text


def test_every_probe_list_has_single_token_words(tokenizer) -> None:
    for name, words in WORD_LISTS.items():
        single = [word for word in words if len(tokenizer.encode(word)[1:]) == 1]
        assert single, name
    assert len(tokenizer.encode("red")[1:]) == 1 and len(tokenizer.encode("traffic light")[1:]) > 1


def test_full_size_layout_has_the_real_ids(tokenizer, tmp_path: Path) -> None:
    full = load_lira_tokenizer(full_size_tokenizer_folder(tmp_path / "full"))  # checks EXPECTED_TOKEN_IDS
    assert len(full) == 92559
    assert {token: full.token_to_id(token) for token in EXPECTED_TOKEN_IDS} == dict(EXPECTED_TOKEN_IDS)
    text = "Please segment the red dog."
    assert full.encode(text) == tokenizer.encode(text)  # the trained pieces keep their ids
    model = spm.SentencePieceProcessor(model_file=str(tmp_path / "full" / "tokenizer.model"))
    assert [model.id_to_piece(i) for i in (92537, 92538, 92543)] == [
        "[PAD_92537]",
        "[UNUSED_TOKEN_141]",
        "[UNUSED_TOKEN_146]",
    ]
    # resizing is idempotent, and refuses sizes the pieces do not fit in
    again = internlm2_layout((tmp_path / "full" / "tokenizer.model").read_bytes(), 291)
    assert again == (FOLDER / "tokenizer.model").read_bytes()
    with pytest.raises(ValueError, match="does not fit"):
        internlm2_layout(again, 200)


def test_a_tokenizer_that_does_not_fit_the_model_is_refused(tmp_path: Path) -> None:
    full = load_lira_tokenizer(full_size_tokenizer_folder(tmp_path / "full"))
    with pytest.raises(DataError, match=r"\[SEG\] -> 92553 \(model: 300\)"):
        LiraEngine(build_lira_tiny(seed=0), full)
