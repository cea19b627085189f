"""The tokenizer folder that ships with `lira-tiny`, and the SentencePiece layout helpers that build it.

`lira-tiny` has the vocabulary layout of the `internvl2_tiny` parity fixture (lira-model.md §5 scaled down):
291 SentencePiece pieces whose last six are InternLM2's ``<|plugin|>`` ... ``<|im_end|>`` ``<|im_start|>``
(ids 285-290, so ``<|im_end|>`` = 289), InternVL's nine added tokens ``<img>`` ... ``</box>`` at 291-299, and
LIRA's six tokens at 300-305 (``[SEG]`` = 300, ``<image_id>`` = 305). `lira_tiny_tokenizer/` is such a folder:
a BPE model trained on a small corpus of the prompts the tasks send and LIRA's `[SEG]` probe words, with
InternLM2's encoding settings (identity normalisation, no dummy prefix, whitespace kept, digits split).

Unlike InternLM2 the tiny model has no byte-fallback pieces (they alone would take 256 of the 285 trainable
ids); characters outside the corpus encode as ``<unk>``. The corpus holds every printable ASCII character and
LIRA's system prompt, so every prompt of the bundled tasks round-trips.

Regenerate (the committed files are what the tests and golden results were made with; SentencePiece
training is not guaranteed to give the same model across versions)::

    python -m models.lira.assets.tiny_tokenizer
"""

from __future__ import annotations

import io
import json
import string
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import sentencepiece as spm

from harness.vocabulary import WORD_LISTS
from models.lira.tokenizer import INTERNVL2_CHAT

FOLDER = Path(__file__).with_name("lira_tiny_tokenizer")
"""The bundled tokenizer folder of `lira-tiny`."""

INTERNLM2_SPECIALS = (
    "<|plugin|>",
    "<|interpreter|>",
    "<|action_end|>",
    "<|action_start|>",
    "<|im_end|>",
    "<|im_start|>",
)
"""The InternLM2 chat tokens behind the last six SentencePiece pieces, in id order."""
INTERNVL_TOKENS = ("<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>")
"""InternVL2's added tokens, in id order after the SentencePiece vocabulary."""

TINY_PIECES = 291
"""SentencePiece size of `lira-tiny` (the fixture's 300-token vocabulary minus InternVL's nine tokens)."""

_USER_DEFINED, _UNUSED = 4, 5
"""`ModelProto.SentencePiece.Type` values."""


# ---------------------------------------------------------------------------
# ModelProto records (no protobuf dependency: pieces are length-delimited records of field 1)
# ---------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7


def _records(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Top-level ``(field number, whole record bytes)`` of a serialised message (wire types 0, 1, 2, 5)."""
    position = 0
    while position < len(data):
        start = position
        key, position = _read_varint(data, position)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, position = _read_varint(data, position)
        elif wire == 1:
            position += 8
        elif wire == 2:
            length, position = _read_varint(data, position)
            position += length
        elif wire == 5:
            position += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} at byte {start}")
        yield field, data[start:position]


def _piece_text(record: bytes) -> str:
    """The ``piece`` string of one serialised ``pieces`` record."""
    _, position = _read_varint(record, 0)
    _, position = _read_varint(record, position)  # length of the embedded message
    for field, inner in _records(record[position:]):
        if field == 1:
            _, start = _read_varint(inner, 0)
            length, start = _read_varint(inner, start)
            return inner[start : start + length].decode()
    raise ValueError("SentencePiece record without a piece string")


def piece_record(text: str, kind: int) -> bytes:
    """One serialised ``ModelProto.pieces`` record with score 0 and the given type."""
    raw = text.encode()
    body = b"\x0a" + _varint(len(raw)) + raw + b"\x15" + struct.pack("<f", 0.0) + b"\x18" + _varint(kind)
    return b"\x0a" + _varint(len(body)) + body


def internlm2_layout(model: bytes, total: int) -> bytes:
    """``model`` with InternLM2's vocabulary layout: its own pieces, unused ``[PAD_i]`` pieces up to ``total - 6``,
    then ``[UNUSED_TOKEN_141]`` ... ``[UNUSED_TOKEN_146]`` (user-defined) as the last six ids.

    A model that already has this layout is resized (its padding and last six pieces are replaced).

    Raises:
        ValueError: ``total`` is too small for the model's own pieces.
    """
    records = list(_records(model))
    pieces = [record for field, record in records if field == 1]
    others = [record for field, record in records if field != 1]
    names = [_piece_text(record) for record in pieces]
    if names[-6:] == [f"[UNUSED_TOKEN_{141 + k}]" for k in range(6)]:
        pieces, names = pieces[:-6], names[:-6]
    kept = len(names)
    while kept and names[kept - 1].startswith("[PAD_"):
        kept -= 1
    pieces = pieces[:kept]
    if len(pieces) + 6 > total:
        raise ValueError(f"a model of {len(pieces)} pieces does not fit in {total} ids with InternLM2's six last")
    padding = [piece_record(f"[PAD_{index}]", _UNUSED) for index in range(len(pieces), total - 6)]
    tail = [piece_record(f"[UNUSED_TOKEN_{141 + k}]", _USER_DEFINED) for k in range(6)]
    return b"".join([*pieces, *padding, *tail, *others])


# ---------------------------------------------------------------------------
# An InternVL2-style folder
# ---------------------------------------------------------------------------


def _entry(content: str) -> dict[str, object]:
    flags = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
    return {"content": content, **flags}


def write_internvl2_tokenizer_folder(folder: Path, model: bytes) -> Path:
    """``tokenizer.model`` plus the ``tokenizer_config.json`` / ``special_tokens_map.json`` / ``added_tokens.json``
    of an InternVL2 (InternLM2) folder around ``model``, which must have `internlm2_layout`. Returns ``folder``."""
    size = spm.SentencePieceProcessor(model_proto=model).get_piece_size()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.model").write_bytes(model)
    decoder = {"0": _entry("<unk>"), "1": _entry("<s>"), "2": _entry("</s>")}
    decoder |= {str(size - 6 + k): _entry(token) for k, token in enumerate(INTERNLM2_SPECIALS)}
    decoder |= {str(size + k): _entry(token) for k, token in enumerate(INTERNVL_TOKENS)}
    additional = [*reversed(INTERNLM2_SPECIALS), *INTERNVL_TOKENS]
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": additional,
        "bos_token": "<s>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "</s>",
        "pad_token": "</s>",
        "tokenizer_class": "InternLM2Tokenizer",
        "unk_token": "<unk>",
    }
    dump = {"ensure_ascii": False, "indent": 2}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, **dump) + "\n", encoding="utf-8")
    special_map = {"additional_special_tokens": additional, "bos_token": "<s>", "eos_token": "</s>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special_map, **dump) + "\n", encoding="utf-8")
    added = {token: size + k for k, token in enumerate(INTERNVL_TOKENS)}
    (folder / "added_tokens.json").write_text(json.dumps(added, **dump) + "\n", encoding="utf-8")
    return folder


# ---------------------------------------------------------------------------
# The tiny model
# ---------------------------------------------------------------------------

SYSTEM_PROMPT = INTERNVL2_CHAT.system.removeprefix("<|im_start|>system\n").removesuffix("<|im_end|>")

PROMPTS = (
    "system\n",
    "user\n",
    "assistant\n",
    "Please segment the man on the left.",
    "Please segment red cup in the middle.",
    "Is there a person in the image?\nAnswer the question using a single word or phrase.",
    "What color is the motorcycle? Answer with one word.",
    "Is the motorcycle blue? Answer yes or no.",
    "Provide an in-depth description of this image.",
    "Please describe this image in detail.",
    "Could you please give me a detailed description of the image? "
    "Please respond with interleaved segmentation masks for the corresponding parts of the answer.",
    "Can you provide a thorough description of the this image? "
    "Please output with interleaved segmentation masks for the corresponding phrases.",
    "A man riding a brown horse next to a white fence, with two dogs and a red car in the background.",
)


def corpus() -> list[str]:
    """Training lines: the prompts, LIRA's probe words each on its own line (weighted so that some words of
    every list become single pieces, which LIRA's probe needs), the system prompt and every printable ASCII
    character."""
    words = [word for words in WORD_LISTS.values() for word in words]
    extra = [*WORD_LISTS["relation"], *WORD_LISTS["color"]]
    return [*PROMPTS * 2, *words * 20, *extra * 6, SYSTEM_PROMPT, string.printable.strip() + " "]


def train(lines: Sequence[str], vocab_size: int) -> bytes:
    """A BPE SentencePiece model with InternLM2's encoding settings, without byte fallback."""
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=buffer,
        model_type="bpe",
        vocab_size=vocab_size,
        byte_fallback=False,
        character_coverage=1.0,
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


def build(folder: Path = FOLDER) -> Path:
    """Train the tiny model and write the folder."""
    model = internlm2_layout(train(corpus(), TINY_PIECES - 6), TINY_PIECES)
    return write_internvl2_tokenizer_folder(folder, model)


def full_size_tokenizer_folder(folder: Path, source: Path = FOLDER) -> Path:
    """The tiny tokenizer resized to InternLM2's 92,544 pieces, so that its ids are the real ones (``<|im_end|>``
    92542, ``[SEG]`` 92553, ``<image_id>`` 92558 after LIRA's additions): for full-size models with random
    weights (benchmarks), where the real InternVL2 tokenizer is not at hand."""
    model = internlm2_layout((source / "tokenizer.model").read_bytes(), 92544)
    return write_internvl2_tokenizer_folder(folder, model)


if __name__ == "__main__":
    print(f"wrote {build()}")


__all__ = [
    "FOLDER",
    "INTERNLM2_SPECIALS",
    "INTERNVL_TOKENS",
    "TINY_PIECES",
    "build",
    "full_size_tokenizer_folder",
    "internlm2_layout",
    "piece_record",
    "write_internvl2_tokenizer_folder",
]
