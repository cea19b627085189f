"""LIRA's tokenizer and prompt format, without remote code.

The original loads InternVL2's tokenizer folder with ``AutoTokenizer(..., trust_remote_code=True)``, which
gives the slow ``InternLM2Tokenizer`` (SentencePiece) on transformers 4.37.2 (InternVL's folders drop the fast
tokenizer on purpose: OpenGVLab/InternVL issue 301), and then adds LIRA's six tokens (lira-model.md §4, §5).
:class:`InternLM2Tokenizer` reproduces that combination on top of ``sentencepiece`` alone, so that token ids
and decoded text are the original's on any transformers version:

- encoding splits the text on added tokens (each kept whole), SentencePiece-encodes every other piece on its
  own (so the model's own normaliser settings apply per piece, exactly as the original), and puts BOS in
  front when special tokens are requested;
- decoding reproduces the original's quirks: added tokens above the SentencePiece vocabulary are joined to
  the text around them with spaces, special tokens inside it get a space *before the preceding text*,
  and English tokenisation artefacts (``" ."``, ``" 's"``, ...) are always cleaned up.

:func:`load_lira_tokenizer` adds ``[SEG] <p> </p> <region> <mark> <image_id>`` and checks that the ids are the
ones the original code hard-codes. :func:`build_prompt` and :func:`tokenize_prompt` build the internvl2_chat
prompt and cut it into token chunks around the ``<image>`` placeholder, xtuner style.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sentencepiece as spm

from harness.errors import DataError

# ---------------------------------------------------------------------------
# Tokens and ids
# ---------------------------------------------------------------------------

LIRA_TOKENS: tuple[str, ...] = ("[SEG]", "<p>", "</p>", "<region>", "<mark>", "<image_id>")
"""Added by ``LIRA._add_special_tokens`` in this order, as special tokens."""

EXPECTED_TOKEN_IDS: Mapping[str, int] = {
    "<|im_end|>": 92542,
    "<|im_start|>": 92543,
    "[SEG]": 92553,
    "<p>": 92554,
    "</p>": 92555,
    "<region>": 92556,
    "<mark>": 92557,
    "<image_id>": 92558,
}
"""Ids of the InternLM2-based InternVL2 folders after LIRA's additions. 92542, 92553 and 92558 are hard-coded in
the original inference loops (lira-model.md §15.18); the others follow from the folder and the order of
addition."""

ILVC_CONTINUATION = " <p>"
"""Text fed after the local-crop tokens in ``base_generate``; its ids are ``encode(ILVC_CONTINUATION,
add_special_tokens=False)`` (the original's ``encode(" <p>")[1:]``)."""

_SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")

_CLEANUPS = (
    (" .", "."),
    (" ?", "?"),
    (" !", "!"),
    (" ,", ","),
    (" ' ", "'"),
    (" n't", "n't"),
    (" 'm", "'m"),
    (" 's", "'s"),
    (" 've", "'ve"),
    (" 're", "'re"),
)


def clean_up_tokenization(text: str) -> str:
    """transformers' ``clean_up_tokenization``: drop the space before punctuation and English contractions."""
    for old, new in _CLEANUPS:
        text = text.replace(old, new)
    return text


@dataclass(frozen=True, slots=True)
class AddedToken:
    """A token kept whole when encoding, with transformers' ``AddedToken`` flags (``single_word`` unsupported)."""

    content: str
    special: bool = False
    lstrip: bool = False
    rstrip: bool = False
    normalized: bool = True


class TokenizerLayoutError(DataError):
    """The tokenizer folder gives LIRA's tokens other ids than the original weights expect."""


# ---------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------


class InternLM2Tokenizer:
    """transformers 4.37's slow ``PreTrainedTokenizer`` + InternVL's remote-code ``InternLM2Tokenizer``.

    Build it with :meth:`from_folder` (an InternVL2 hub folder) or :func:`load_lira_tokenizer`.
    """

    def __init__(
        self,
        model_file: str | Path,
        *,
        added_tokens: Mapping[int, AddedToken] | None = None,
        special_tokens: Mapping[str, str] | None = None,
        additional_special_tokens: Sequence[str] = (),
        add_bos_token: bool = True,
        add_eos_token: bool = False,
        clean_up_tokenization_spaces: bool = False,
    ) -> None:
        """
        Args:
            model_file: the SentencePiece ``tokenizer.model``.
            added_tokens: id -> token, as ``added_tokens_decoder`` of ``tokenizer_config.json``.
            special_tokens: e.g. ``{"bos_token": "<s>", ...}``; defaults to InternLM2's
                ``<s>``/``</s>``/``<unk>``/``</s>`` (pad).
            additional_special_tokens: further special tokens, in order.
        """
        self.model_file = Path(model_file)
        self.sp_model = spm.SentencePieceProcessor()
        try:
            self.sp_model.Load(str(model_file))
        except (OSError, RuntimeError) as error:
            raise DataError(f"{model_file}: not a readable SentencePiece model ({error})") from error
        self.add_bos_token = add_bos_token
        self.add_eos_token = add_eos_token
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces
        if special_tokens is None:
            special_tokens = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "</s>"}
        self.special_tokens = {key: value for key, value in special_tokens.items() if value is not None}
        self.additional_special_tokens: list[str] = list(dict.fromkeys(additional_special_tokens))
        self._added_decoder: dict[int, AddedToken] = dict(added_tokens or {})
        self._added_encoder: dict[str, int] = {token.content: index for index, token in self._added_decoder.items()}
        self._refresh()
        # transformers adds the special tokens that are not added tokens yet (e.g. when only a
        # special_tokens_map.json names them): <s> and </s> then keep their SentencePiece ids.
        missing = [token for token in self.all_special_tokens if token not in self._added_encoder]
        self._add(missing, special=True)

    # -- construction -------------------------------------------------------------------------------------

    @classmethod
    def from_folder(cls, folder: str | Path) -> InternLM2Tokenizer:
        """Load an InternVL2 tokenizer folder as ``AutoTokenizer.from_pretrained`` (transformers 4.37) does.

        Reads ``tokenizer.model`` and ``tokenizer_config.json``. When the config has no
        ``added_tokens_decoder`` (folders saved before transformers 4.34), ``special_tokens_map.json`` and
        ``added_tokens.json`` are read instead, as transformers does.
        """
        folder = Path(folder)
        model_file = folder / "tokenizer.model"
        if not model_file.is_file():
            raise DataError(f"{model_file}: missing; expected the SentencePiece model of an InternVL2 tokenizer folder")
        config = _read_json(folder / "tokenizer_config.json", required=False)
        tokenizer_class = config.get("tokenizer_class")
        if tokenizer_class not in (None, "InternLM2Tokenizer", "InternLM2TokenizerFast"):
            raise DataError(
                f"{folder / 'tokenizer_config.json'}: tokenizer_class is {tokenizer_class!r}; only InternLM2-based "
                "InternVL2 folders (InternVL2-2B, InternVL2-8B) are supported"
            )
        if config.get("sp_model_kwargs"):
            raise DataError(f"{folder / 'tokenizer_config.json'}: sp_model_kwargs (sampling) are not supported")
        special = {key: _token_content(config[key]) for key in _SPECIAL_TOKEN_KEYS if config.get(key) is not None}
        additional = [_token_content(token) for token in config.get("additional_special_tokens") or []]
        added: dict[int, AddedToken] = {}
        if "added_tokens_decoder" in config:
            for index, entry in config["added_tokens_decoder"].items():
                added[int(index)] = _added_token(entry, folder / "tokenizer_config.json")
        else:
            special_map = _read_json(folder / "special_tokens_map.json", required=False)
            for key, value in special_map.items():
                if key == "additional_special_tokens":
                    for token in value or []:
                        if _token_content(token) not in additional:
                            additional.append(_token_content(token))
                elif key in _SPECIAL_TOKEN_KEYS and value is not None:
                    special[key] = _token_content(value)
            names = set(special.values()) | set(additional)
            for content, index in _read_json(folder / "added_tokens.json", required=False).items():
                is_special = content in names
                added[int(index)] = AddedToken(content, special=is_special, normalized=not is_special)
        return cls(
            model_file,
            added_tokens=added,
            special_tokens={
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "pad_token": "</s>",
                **special,
            },
            additional_special_tokens=additional,
            add_bos_token=bool(config.get("add_bos_token", True)),
            add_eos_token=bool(config.get("add_eos_token", False)),
            clean_up_tokenization_spaces=bool(config.get("clean_up_tokenization_spaces", False)),
        )

    def add_tokens(self, tokens: Iterable[str], *, special: bool) -> int:
        """``tokenizer.add_tokens(tokens, special_tokens=special)``; returns how many new ids were created.

        A token already in the vocabulary keeps its id; the others get ``len(self)``, ``len(self) + 1``, ...
        in order. Special ones join :attr:`additional_special_tokens`.
        """
        return self._add(list(tokens), special=special)

    def _add(self, tokens: Sequence[str], *, special: bool) -> int:
        if not tokens:
            return 0
        vocab = self.get_vocab()
        next_index = len(vocab)
        created = 0
        for content in tokens:
            if not content or content in self._added_encoder:
                continue
            is_special = special or content in self._all_special
            if content in vocab:
                index = vocab[content]
            else:
                index = next_index + created
                vocab[content] = index
                created += 1
            if is_special and content not in self._all_special:
                self.additional_special_tokens.append(content)
            self._added_decoder[index] = AddedToken(content, special=is_special, normalized=not is_special)
            self._added_encoder[content] = index
            self._refresh()
        return created

    def _refresh(self) -> None:
        """Recompute the caches that depend on the added and special tokens."""
        ordered = [self.special_tokens[key] for key in _SPECIAL_TOKEN_KEYS if key in self.special_tokens]
        self.all_special_tokens: list[str] = list(dict.fromkeys([*ordered, *self.additional_special_tokens]))
        self._all_special = frozenset(self.all_special_tokens)
        self.all_special_ids: frozenset[int] = frozenset(self.token_to_id(token) for token in self.all_special_tokens)
        size = self.vocab_size
        # transformers' "legacy added tokens": decoded on their own and joined with spaces
        self._standalone = (frozenset(self._added_encoder) - self._all_special) | {
            token for token in self.additional_special_tokens if self.token_to_id(token) >= size
        }
        contents = sorted(self._added_encoder, key=len, reverse=True)
        self._split_pattern = re.compile("(" + "|".join(map(re.escape, contents)) + ")") if contents else None

    # -- vocabulary ---------------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Size of the SentencePiece vocabulary (without tokens added above it)."""
        return self.sp_model.get_piece_size()

    def get_vocab(self) -> dict[str, int]:
        vocab = {self.id_to_token(index): index for index in range(self.vocab_size)}
        vocab.update(self._added_encoder)
        return vocab

    def __len__(self) -> int:
        return len(self.get_vocab())

    def token_to_id(self, token: str) -> int:
        if token in self._added_encoder:
            return self._added_encoder[token]
        return self.sp_model.piece_to_id(token)

    def id_to_token(self, index: int) -> str:
        if index in self._added_decoder:
            return self._added_decoder[index].content
        if not 0 <= index < self.vocab_size:
            raise ValueError(f"token id {index} is outside the vocabulary (size {len(self)})")
        return self.sp_model.id_to_piece(index)

    @property
    def bos_token_id(self) -> int:
        """The SentencePiece model's BOS id, as the remote-code tokenizer returns it."""
        return self.sp_model.bos_id()

    @property
    def eos_token_id(self) -> int:
        return self.sp_model.eos_id()

    @property
    def pad_token_id(self) -> int | None:
        pad = self.special_tokens.get("pad_token")
        return None if pad is None else self.token_to_id(pad)

    # -- encoding -----------------------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[str]:
        """Token strings: added tokens whole, every other piece of text SentencePiece-encoded on its own."""
        parts = [part for part in self._split_pattern.split(text) if part] if self._split_pattern else [text]
        for position, part in enumerate(parts):
            if part not in self._added_encoder:
                continue
            token = self._added_decoder[self._added_encoder[part]]
            if token.rstrip and position + 1 < len(parts):
                parts[position + 1] = parts[position + 1].lstrip()
            if token.lstrip and position > 0:
                parts[position - 1] = parts[position - 1].rstrip()
        tokens: list[str] = []
        for part in parts:
            if not part:
                continue
            if part in self._added_encoder:
                tokens.append(part)
            else:
                tokens.extend(self.sp_model.encode(part, out_type=str))
        return tokens

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``text``; with ``add_special_tokens`` BOS goes in front (and EOS at the end if configured)."""
        ids = [self.token_to_id(token) for token in self.tokenize(text)]
        if add_special_tokens:
            if self.add_bos_token:
                ids = [self.bos_token_id, *ids]
            if self.add_eos_token:
                ids = [*ids, self.eos_token_id]
        return ids

    # -- decoding -----------------------------------------------------------------------------------------

    def decode(self, ids: int | Iterable[int], *, skip_special_tokens: bool = False) -> str:
        """Text of ``ids`` exactly as the original's ``tokenizer.decode(ids, skip_special_tokens=...)``."""
        ids = [ids] if isinstance(ids, int) else [int(index) for index in ids]
        tokens = [self.id_to_token(i) for i in ids if not (skip_special_tokens and i in self.all_special_ids)]
        texts: list[str] = []
        pending: list[str] = []
        for token in tokens:
            if token in self._standalone:
                if pending:
                    text = self._tokens_to_string(pending)
                    if text:
                        texts.append(text)
                    pending = []
                texts.append(token)
            else:
                pending.append(token)
        if pending:
            texts.append(self._tokens_to_string(pending))
        text = " ".join(texts)
        return clean_up_tokenization(text) if self.clean_up_tokenization_spaces else text

    def _tokens_to_string(self, tokens: Sequence[str]) -> str:
        """The remote code's ``convert_tokens_to_string`` (its prefix-space add-and-strip cancels out)."""
        out = ""
        pieces: list[str] = []
        previous_special = False
        for token in tokens:
            if token in self._all_special:
                if not previous_special:
                    out += " "
                out += self.sp_model.decode(pieces) + token
                previous_special = True
                pieces = []
            else:
                pieces.append(token)
                previous_special = False
        out += self.sp_model.decode(pieces)
        return clean_up_tokenization(out)


def _read_json(path: Path, *, required: bool) -> dict[str, Any]:
    if not path.is_file():
        if required:
            raise DataError(f"{path}: missing")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _token_content(value: Any) -> str:
    return value["content"] if isinstance(value, dict) else str(value)


def _added_token(entry: Any, source: Path) -> AddedToken:
    if isinstance(entry, str):
        return AddedToken(entry)
    if not isinstance(entry, dict) or "content" not in entry:
        raise DataError(f"{source}: added_tokens_decoder entry {entry!r} has no 'content'")
    if entry.get("single_word"):
        raise DataError(f"{source}: added token {entry['content']!r} has single_word=true, which is not supported")
    return AddedToken(
        content=entry["content"],
        special=bool(entry.get("special", False)),
        lstrip=bool(entry.get("lstrip", False)),
        rstrip=bool(entry.get("rstrip", False)),
        normalized=bool(entry.get("normalized", True)),
    )


def load_lira_tokenizer(
    folder: str | Path, *, expected_ids: Mapping[str, int] | None = EXPECTED_TOKEN_IDS
) -> InternLM2Tokenizer:
    """The InternVL2 folder's tokenizer with LIRA's six tokens added, as ``LIRA._add_special_tokens`` does.

    Raises:
        TokenizerLayoutError: a token of ``expected_ids`` has another id (pass ``None`` to skip the check,
            e.g. for a small test vocabulary).
    """
    tokenizer = InternLM2Tokenizer.from_folder(folder)
    tokenizer.add_tokens(LIRA_TOKENS, special=True)
    if expected_ids:
        wrong = {
            token: tokenizer.token_to_id(token)
            for token, index in expected_ids.items()
            if tokenizer.token_to_id(token) != index
        }
        if wrong:
            found = ", ".join(f"{token!r} -> {got} (expected {expected_ids[token]})" for token, got in wrong.items())
            raise TokenizerLayoutError(
                f"{folder}: the tokenizer gives {found}. LIRA's weights and its decoding loop hard-code these ids "
                "for the InternLM2-based InternVL2-2B/8B tokenizers with LIRA's six tokens added in order "
                f"({', '.join(LIRA_TOKENS)}); use the tokenizer folder LIRA was trained with"
            )
    return tokenizer


# ---------------------------------------------------------------------------
# Prompt (xtuner PROMPT_TEMPLATE.internvl2_chat)
# ---------------------------------------------------------------------------

IMAGE_PLACEHOLDER = "<image>"
IMAGE_TOKEN_INDEX = -200
"""Marker id between prompt chunks; the model splices the image's visual tokens in its place."""


@dataclass(frozen=True, slots=True)
class ChatTemplate:
    """An xtuner prompt template: fixed system turn, user-turn format with ``{input}``, end-of-turn suffix."""

    system: str
    instruction: str
    suffix: str
    stop_words: tuple[str, ...]


INTERNVL2_CHAT = ChatTemplate(
    system=(
        "<|im_start|>system\n你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, "
        "是一个有用无害的人工智能助手。<|im_end|>"
    ),
    instruction="<|im_start|>user\n{input}<|im_end|><|im_start|>assistant\n",
    suffix="<|im_end|>",
    stop_words=("<|im_end|>",),
)


def build_prompt(question: str, template: ChatTemplate = INTERNVL2_CHAT) -> str:
    """System turn + user turn with ``"<image>\\n"`` in front of ``question`` (unless it has ``<image>``)."""
    if IMAGE_PLACEHOLDER not in question:
        question = f"{IMAGE_PLACEHOLDER}\n{question}"
    return template.system + template.instruction.format(input=question)


@dataclass(frozen=True, slots=True)
class PromptIds:
    """A prompt tokenised chunk by chunk around its ``<image>`` placeholders.

    Attributes:
        chunks: token ids of the text before, between and after the placeholders (``num_images + 1`` chunks).
    """

    chunks: tuple[tuple[int, ...], ...]

    @property
    def num_images(self) -> int:
        return len(self.chunks) - 1

    @property
    def input_ids(self) -> list[int]:
        """The chunks joined by :data:`IMAGE_TOKEN_INDEX`, as xtuner builds ``input_ids``."""
        ids: list[int] = []
        for position, chunk in enumerate(self.chunks):
            if position:
                ids.append(IMAGE_TOKEN_INDEX)
            ids.extend(chunk)
        return ids


def tokenize_prompt(tokenizer: InternLM2Tokenizer, prompt: str, *, bos: bool) -> PromptIds:
    """Split ``prompt`` at ``<image>`` and tokenise each chunk; only the first chunk may get BOS.

    ``bos`` follows the entry point being reproduced (lira-model.md §4): ``True`` for referring segmentation
    (``refcoco_lira.py``) and training; ``False`` for ``base_generate`` (GCG, CHAIR, demo) and ``chat_clean``
    (POPE, VQA, AttrEval).
    """
    chunks = prompt.split(IMAGE_PLACEHOLDER)
    return PromptIds(
        tuple(
            tuple(tokenizer.encode(chunk, add_special_tokens=bos and position == 0))
            for position, chunk in enumerate(chunks)
        )
    )


__all__ = [
    "EXPECTED_TOKEN_IDS",
    "ILVC_CONTINUATION",
    "IMAGE_PLACEHOLDER",
    "IMAGE_TOKEN_INDEX",
    "INTERNVL2_CHAT",
    "LIRA_TOKENS",
    "AddedToken",
    "ChatTemplate",
    "InternLM2Tokenizer",
    "PromptIds",
    "TokenizerLayoutError",
    "build_prompt",
    "clean_up_tokenization",
    "load_lira_tokenizer",
    "tokenize_prompt",
]
