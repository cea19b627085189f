"""LIRA tokenizer and prompt (lira-model.md §4, §5) against SentencePiece and against the original code.

Two tokenizer folders are used:
- one built here: a small BPE SentencePiece model trained in the test with InternLM2's encoding settings,
  padded to InternLM2's 92544 pieces with ``[UNUSED_TOKEN_141..146]`` last (the pieces behind
  ``<|plugin|>`` ... ``<|im_start|>``), next to an InternVL2-2B style ``tokenizer_config.json``. Its ids are
  the real ones, and encoding is checked against a plain SentencePiece reference written here;
- ``fixtures/internlm2_tokenizer``: a 406-piece model in the same layout, with the outputs of the ORIGINAL
  remote-code ``InternLM2Tokenizer`` under transformers 4.37.2 (see that folder's README).

InternLM2's ``tokenizer.model`` uses identity normalisation, no dummy prefix and no whitespace collapsing
(each SentencePiece piece then decodes to its exact surface text, which LIRA's token-by-token decoding relies
on, and transformers' own InternVL conversion sets ``prepend_scheme="never"``), BPE with byte fallback.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import sentencepiece as spm

from harness.errors import DataError
from models.lira.assets.tiny_tokenizer import internlm2_layout, write_internvl2_tokenizer_folder
from models.lira.tokenizer import (
    EXPECTED_TOKEN_IDS,
    ILVC_CONTINUATION,
    IMAGE_TOKEN_INDEX,
    INTERNVL2_CHAT,
    AddedToken,
    InternLM2Tokenizer,
    TokenizerLayoutError,
    build_prompt,
    load_lira_tokenizer,
    tokenize_prompt,
)

FIXTURE = Path(__file__).parent / "fixtures" / "internlm2_tokenizer"

INTERNLM2_SPECIALS = [
    "<|plugin|>",
    "<|interpreter|>",
    "<|action_end|>",
    "<|action_start|>",
    "<|im_end|>",
    "<|im_start|>",
]
INTERNVL_TOKENS = ["<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>"]
LIRA = ["[SEG]", "<p>", "</p>", "<region>", "<mark>", "<image_id>"]

CORPUS = [
    "Please segment the man on the left.",
    "A man riding a brown horse next to a white fence, with two dogs and a red car in the background.",
    "Could you please give me a detailed description of the image? Please respond with interleaved masks.",
    "The woman in the blue shirt is holding an umbrella; it's raining and they're waiting for the bus.",
    "There are 3 cats, 12 birds and 2024 leaves. Isn't it nice? Yes! No, it is not.",
    "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。",
    "  leading spaces and    multiple   spaces\ttabs\nnew lines\n\n",
] * 20


# ---------------------------------------------------------------------------
# An InternVL2-style folder around a model trained here
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_model() -> bytes:
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS),
        model_writer=buffer,
        model_type="bpe",
        vocab_size=380,
        byte_fallback=True,
        character_coverage=0.99,
        normalization_rule_name="identity",
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        hard_vocab_limit=False,
        num_threads=1,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    return buffer.getvalue()


@pytest.fixture(scope="module")
def full_folder(trained_model: bytes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("internvl2_tokenizer")
    write_internvl2_tokenizer_folder(folder, internlm2_layout(trained_model, 92544))
    assert spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model")).get_piece_size() == 92544
    return folder


@pytest.fixture(scope="module")
def tokenizer(full_folder: Path) -> InternLM2Tokenizer:
    return load_lira_tokenizer(full_folder)


# ---------------------------------------------------------------------------
# Ids
# ---------------------------------------------------------------------------


def test_special_tokens_land_at_the_original_ids(tokenizer: InternLM2Tokenizer) -> None:
    expected = {"<unk>": 0, "<s>": 1, "</s>": 2, "<|im_end|>": 92542, "<|im_start|>": 92543}
    expected |= {token: 92544 + k for k, token in enumerate(INTERNVL_TOKENS)}
    expected |= {token: 92553 + k for k, token in enumerate(LIRA)}
    assert {token: tokenizer.token_to_id(token) for token in expected} == expected
    assert {token: tokenizer.id_to_token(index) for token, index in expected.items()} == {t: t for t in expected}
    assert len(tokenizer) == 92559 and tokenizer.vocab_size == 92544
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (1, 2, 2)
    assert EXPECTED_TOKEN_IDS["[SEG]"] == 92553 and EXPECTED_TOKEN_IDS["<image_id>"] == 92558


def test_other_layouts_are_refused_with_a_clear_error(trained_model: bytes, tmp_path: Path) -> None:
    trained_size = spm.SentencePieceProcessor(model_proto=trained_model).get_piece_size()
    size = trained_size + 6
    write_internvl2_tokenizer_folder(tmp_path, internlm2_layout(trained_model, size))
    with pytest.raises(TokenizerLayoutError, match=rf"'\[SEG\]' -> {size + 9} \(expected 92553\)"):
        load_lira_tokenizer(tmp_path)
    relative = {"<|im_end|>": size - 2, "[SEG]": size + 9, "<image_id>": size + 14}
    assert load_lira_tokenizer(tmp_path, expected_ids=relative).token_to_id("</p>") == size + 11


def test_folder_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"tokenizer\.model: missing"):
        InternLM2Tokenizer.from_folder(tmp_path)
    shutil.copy(FIXTURE / "tokenizer.model", tmp_path / "tokenizer.model")
    (tmp_path / "tokenizer_config.json").write_text('{"tokenizer_class": "Qwen2Tokenizer"}', encoding="utf-8")
    with pytest.raises(DataError, match="Qwen2Tokenizer"):
        InternLM2Tokenizer.from_folder(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text("{}", encoding="utf-8")
    (tmp_path / "tokenizer.model").write_bytes(b"not a model")
    with pytest.raises(DataError, match="not a readable SentencePiece model"):
        InternLM2Tokenizer.from_folder(tmp_path)
    shutil.copy(FIXTURE / "tokenizer.model", tmp_path / "tokenizer.model")
    (tmp_path / "tokenizer_config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match=r"tokenizer_config\.json: not valid JSON"):
        InternLM2Tokenizer.from_folder(tmp_path)


# ---------------------------------------------------------------------------
# Encoding against plain SentencePiece
# ---------------------------------------------------------------------------


def reference_encode(folder: Path, text: str, *, bos: bool) -> list[int]:
    """Added tokens (longest first at each position) become their ids, all text between is ``sp.encode``d."""
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    size = sp.get_piece_size()
    added = {"<unk>": 0, "<s>": 1, "</s>": 2}
    added |= {token: size - 6 + k for k, token in enumerate(INTERNLM2_SPECIALS)}
    added |= {token: size + k for k, token in enumerate([*INTERNVL_TOKENS, *LIRA])}
    ids: list[int] = [1] if bos else []
    start = position = 0
    while position < len(text):
        matches = [token for token in added if text.startswith(token, position)]
        if matches:
            token = max(matches, key=len)
            if start < position:
                ids += sp.encode(text[start:position])
            ids.append(added[token])
            position = start = position + len(token)
        else:
            position += 1
    if start < len(text):
        ids += sp.encode(text[start:])
    return ids


TEXTS = [
    build_prompt("Please segment the man on the left."),
    build_prompt("Could you please give me a detailed description of the image?"),
    "[SEG]<image_id> <p> a man </p> [SEG] riding a horse.<|im_end|>",
    "x[SEG]y<p>z</p>",
    "  two leading, three   inner and trailing  ",
    "tabs\tand\nnewlines\n\n",
    "rare 龘 and 🐉 use byte fallback",
    "<s>literal</s><unk>",
    "[UNUSED_TOKEN_146]user\n",
    "",
]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("bos", [True, False])
def test_encode_matches_sentencepiece_reference(
    tokenizer: InternLM2Tokenizer, full_folder: Path, text: str, bos: bool
) -> None:
    assert tokenizer.encode(text, add_special_tokens=bos) == reference_encode(full_folder, text, bos=bos)


def test_special_tokens_are_never_split(tokenizer: InternLM2Tokenizer) -> None:
    ids = tokenizer.encode("a[SEG]b<image_id>c<|im_end|>", add_special_tokens=False)
    assert [i for i in ids if i >= 92542] == [92553, 92558, 92542]
    assert tokenizer.encode("<|im_start|>", add_special_tokens=False) == [92543]
    assert tokenizer.encode("[UNUSED_TOKEN_146]", add_special_tokens=False) == [92543]  # the piece behind it


def test_added_token_strip_flags() -> None:
    # transformers: lstrip eats the whitespace on the token's left, rstrip the whitespace on its right
    sp = spm.SentencePieceProcessor(model_file=str(FIXTURE / "tokenizer.model"))
    tokenizer = InternLM2Tokenizer(
        FIXTURE / "tokenizer.model",
        added_tokens={406: AddedToken("<x>", special=True, lstrip=True), 407: AddedToken("<y>", rstrip=True)},
    )
    expected = [*sp.encode("a"), 406, *sp.encode("  b "), 407, *sp.encode("c")]
    assert tokenizer.encode("a  <x>  b <y>  c", add_special_tokens=False) == expected


def test_added_tokens_longest_match_and_plain_added_tokens() -> None:
    tokenizer = InternLM2Tokenizer.from_folder(FIXTURE)
    sp = spm.SentencePieceProcessor(model_file=str(FIXTURE / "tokenizer.model"))
    assert tokenizer.add_tokens(["ab", "abc"], special=False) == 2
    assert (tokenizer.token_to_id("ab"), tokenizer.token_to_id("abc")) == (415, 416)
    assert tokenizer.add_tokens(["abc", "▁"], special=True) == 0  # already known: ids unchanged
    assert tokenizer.token_to_id("▁") == sp.piece_to_id("▁")
    x = sp.encode("x")
    assert tokenizer.encode("xabcx", add_special_tokens=False) == [*x, 416, *x]
    assert tokenizer.encode("xabx", add_special_tokens=False) == [*x, 415, *x]
    # non-special added tokens are decoded on their own and joined with spaces
    assert tokenizer.decode([*x, 416, *x]) == "x abc x"


def test_ilvc_continuation_ids(tokenizer: InternLM2Tokenizer) -> None:
    ids = tokenizer.encode(ILVC_CONTINUATION, add_special_tokens=False)
    assert ids == tokenizer.encode(ILVC_CONTINUATION)[1:]
    assert ids == [tokenizer.token_to_id("▁"), 92554]


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[SEG]<image_id> <p> a man </p> [SEG] riding a horse.",
        "  two leading, three   inner and trailing  ",
        "tabs\tand\nnewlines\n\n<p>x</p>",
    ],
)
def test_token_by_token_decoding_round_trips(tokenizer: InternLM2Tokenizer, text: str) -> None:
    # base_generate appends tokenizer.decode(token) step by step
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert "".join(tokenizer.decode([i]) for i in ids) == text


def test_decode_spacing_around_special_tokens(tokenizer: InternLM2Tokenizer) -> None:
    ids = tokenizer.encode("[SEG]<image_id> <p> a man </p> [SEG] riding a horse.<|im_end|>", add_special_tokens=False)
    # tokens above the SentencePiece vocabulary are decoded alone and joined with single spaces; <|im_end|>
    # (inside it) gets one space in front of the text decoded before it
    assert tokenizer.decode(ids) == "[SEG] <image_id>   <p>  a man  </p>   [SEG]   riding a horse.<|im_end|>"
    assert tokenizer.decode(ids, skip_special_tokens=True) == "  a man   riding a horse."
    single = [tokenizer.decode([i]) for i in (92553, 92558, 92554, 92542)]
    assert single == ["[SEG]", "<image_id>", "<p>", " <|im_end|>"]
    assert tokenizer.decode(92553) == "[SEG]"


def test_decode_always_cleans_up_english_artefacts(tokenizer: InternLM2Tokenizer) -> None:
    ids = tokenizer.encode("a dog . is it ? he 's", add_special_tokens=False)
    assert tokenizer.decode(ids) == "a dog. is it? he's"


# ---------------------------------------------------------------------------
# The original InternLM2Tokenizer (fixtures/internlm2_tokenizer)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def original() -> dict:
    return json.loads((FIXTURE / "expected_original.json").read_text(encoding="utf-8"))


def _compare(tokenizer: InternLM2Tokenizer, original: dict, expected: dict) -> None:
    assert len(tokenizer) == expected["length"]
    assert {token: tokenizer.token_to_id(token) for token in expected["ids"]} == expected["ids"]
    assert [tokenizer.encode(text) for text in original["texts"]] == expected["encode_bos"]
    assert [tokenizer.encode(t, add_special_tokens=False) for t in original["texts"]] == expected["encode_no_bos"]
    sequences = original["id_sequences"]
    assert [tokenizer.decode(ids) for ids in sequences] == expected["decode"]
    assert [tokenizer.decode(ids, skip_special_tokens=True) for ids in sequences] == expected["decode_skip_special"]
    by_token = ["".join(tokenizer.decode([i]) for i in ids) for ids in sequences]
    assert by_token == expected["decode_token_by_token"]


def test_matches_the_original_tokenizer(original: dict) -> None:
    _compare(load_lira_tokenizer(FIXTURE, expected_ids=None), original, original["folder"])


def test_matches_the_original_on_a_folder_without_added_tokens_decoder(original: dict, tmp_path: Path) -> None:
    for name in ("tokenizer.model", "special_tokens_map.json", "added_tokens.json"):
        shutil.copy(FIXTURE / name, tmp_path / name)
    config = json.loads((FIXTURE / "tokenizer_config.json").read_text(encoding="utf-8"))
    del config["added_tokens_decoder"]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    _compare(load_lira_tokenizer(tmp_path, expected_ids=None), original, original["legacy_folder"])


# ---------------------------------------------------------------------------
# Prompt
# ---------------------------------------------------------------------------

SYSTEM = (
    "<|im_start|>system\n\u4f60\u662f\u7531\u4e0a\u6d77\u4eba\u5de5\u667a\u80fd\u5b9e\u9a8c\u5ba4\u8054\u5408"
    "\u5546\u6c64\u79d1\u6280\u5f00\u53d1\u7684\u4e66\u751f\u591a\u6a21\u6001\u5927\u6a21\u578b\uff0c\u82f1"
    "\u6587\u540d\u53ebInternVL, \u662f\u4e00\u4e2a\u6709\u7528\u65e0\u5bb3\u7684\u4eba\u5de5\u667a\u80fd\u52a9"
    "\u624b\u3002<|im_end|>"
)


def test_internvl2_chat_template_is_verbatim() -> None:
    assert INTERNVL2_CHAT.system == SYSTEM
    assert INTERNVL2_CHAT.instruction == "<|im_start|>user\n{input}<|im_end|><|im_start|>assistant\n"
    assert INTERNVL2_CHAT.suffix == "<|im_end|>" and INTERNVL2_CHAT.stop_words == ("<|im_end|>",)


def test_build_prompt() -> None:
    expected = SYSTEM + "<|im_start|>user\n<image>\nPlease segment the dog.<|im_end|><|im_start|>assistant\n"
    assert build_prompt("Please segment the dog.") == expected
    assert build_prompt("<image>\nPlease segment the dog.") == expected
    assert build_prompt("What {is} this?").endswith("user\n<image>\nWhat {is} this?<|im_end|><|im_start|>assistant\n")


@pytest.mark.parametrize("bos", [True, False])
def test_tokenize_prompt_chunks_around_the_image(tokenizer: InternLM2Tokenizer, bos: bool) -> None:
    prompt = build_prompt("Please segment the dog.")
    before, after = prompt.split("<image>")
    tokens = tokenize_prompt(tokenizer, prompt, bos=bos)
    assert tokens.num_images == 1
    assert tokens.chunks[0] == tuple(([1] if bos else []) + tokenizer.encode(before, add_special_tokens=False))
    assert tokens.chunks[1] == tuple(tokenizer.encode(after, add_special_tokens=False))
    assert tokens.chunks[0][int(bos)] == 92543
    end_of_turn = tokens.chunks[1].index(92542)
    assert tokens.chunks[1][end_of_turn + 1] == 92543  # no newline between <|im_end|> and <|im_start|>
    assert tokens.input_ids == [*tokens.chunks[0], IMAGE_TOKEN_INDEX, *tokens.chunks[1]]
    assert tokens.input_ids.count(IMAGE_TOKEN_INDEX) == 1
