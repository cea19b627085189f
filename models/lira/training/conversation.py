"""Training conversations: the ILVC answer format, LLaVA turns, and xtuner's encoding with labels.

- `ilvc_phrase` / `tag_caption`: every grounded phrase becomes `[SEG]<image_id><image> <p> phrase </p> [SEG]`
  (lira-model.md §7.1); the `<image>` inside the answer is where the phrase's local crop goes.
- `llava_turns`: xtuner's `llava_map_fn` (consecutive human messages joined; `<image>` moved to the front of its
  message followed by a newline; leading assistant messages dropped).
- `encode_conversation`: `template_map_fn` with `internvl2_chat` (system turn before the first question,
  `<|im_end|>` after every answer, no EOS, no separator) then xtuner's `encode_fn`: one BOS, every chunk between
  `<image>` placeholders encoded on its own without special tokens, `IMAGE_TOKEN_INDEX` for each placeholder;
  questions (with the system turn) get `IGNORE_INDEX` labels, answers (with their `<|im_end|>`) are supervised.
  Placeholder positions are kept in the labels; the model replaces them, and the 256 visual tokens spliced there,
  with `IGNORE_INDEX`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import DataError
from models.lira.model import IGNORE_INDEX
from models.lira.tokenizer import (
    IMAGE_PLACEHOLDER,
    IMAGE_TOKEN_INDEX,
    INTERNVL2_CHAT,
    ChatTemplate,
    InternLM2Tokenizer,
)
from tasks.gcg import LIRA_PROMPTS

GCG_QUESTIONS: tuple[str, ...] = (LIRA_PROMPTS[1], LIRA_PROMPTS[0], *LIRA_PROMPTS[2:])
"""`GCG_QUESTIONS` of `gcg_process.py` (one is drawn per caption), in that file's order."""

REFERRING_QUESTION = "Please segment {expression}."
"""`SEG_QUESTIONS` of `referring_seg_process.py` (its only entry)."""


def ilvc_phrase(phrase: str) -> str:
    """A grounded phrase in LIRA's training format: segment, look at the crop, then name the region."""
    return f"[SEG]<image_id>{IMAGE_PLACEHOLDER} <p> {phrase} </p> [SEG]"


def referring_answer(expression: str) -> str:
    """`ANSWER_LIST_GCG_FORMAT` of `referring_seg_process.py`."""
    return ilvc_phrase(expression) + "."


def tag_caption(caption: str, spans: Sequence[tuple[int, int]]) -> str:
    """Wrap each `caption[start:end]` in `ilvc_phrase`, from the last span to the first so that earlier offsets
    stay valid (`tag_caption` of `gcg_process.py`). Spans must not overlap."""
    for start, end in sorted(spans, key=lambda span: span[0], reverse=True):
        caption = f"{caption[:start]}{ilvc_phrase(caption[start:end])}{caption[end:]}"
    return caption


@dataclass(frozen=True)
class Turn:
    """One question and its answer; the first question of an image sample holds `<image>` (as `"<image>\\n..."`)."""

    question: str
    answer: str


def with_image_first(text: str) -> str:
    """`llava_map_fn` on a human message holding `<image>`: remove it, strip, put `"<image>\\n"` in front, strip."""
    text = text.replace(IMAGE_PLACEHOLDER, "").strip()
    return (IMAGE_PLACEHOLDER + "\n" + text).strip()


def llava_turns(messages: Any, where: str) -> list[Turn]:
    """`llava_map_fn`: LLaVA `conversations` → turns.

    Raises:
        DataError: a message that is not `{"from": "human"|"gpt", "value": str}`.
    """
    if not isinstance(messages, list):
        raise DataError(f"{where}: 'conversations' must be a list of messages")
    turns: list[Turn] = []
    question = ""
    started = False
    for number, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("value"), str):
            raise DataError(f"{where}: conversations[{number}] must be an object with a string 'value'")
        role = message.get("from")
        if role not in ("human", "gpt"):
            raise DataError(f"{where}: conversations[{number}] has 'from' {role!r}; expected 'human' or 'gpt'")
        if role == "gpt" and not started:
            continue  # leading assistant messages are dropped
        started = True
        if role == "human":
            value = message["value"]
            question += with_image_first(value) if IMAGE_PLACEHOLDER in value else value
        else:
            turns.append(Turn(question, message["value"]))
            question = ""
    return turns


@dataclass(frozen=True)
class EncodedConversation:
    """Token ids and input-aligned labels of one conversation (`IMAGE_TOKEN_INDEX` at each `<image>`)."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.input_ids)


class ConversationEncoder:
    """xtuner's `template_map_fn` + `encode_fn` for one tokenizer and template (encodings of repeated text
    pieces, such as the system turn, are memoised)."""

    def __init__(self, tokenizer: InternLM2Tokenizer, template: ChatTemplate = INTERNVL2_CHAT) -> None:
        self.tokenizer = tokenizer
        self.template = template
        self._memo: dict[str, tuple[int, ...]] = {}

    def _encode_text(self, text: str) -> tuple[int, ...]:
        ids = self._memo.get(text)
        if ids is None:
            ids = tuple(self.tokenizer.encode(text, add_special_tokens=False))
            if len(self._memo) < 4096:
                self._memo[text] = ids
        return ids

    def _encode_chunks(self, text: str) -> list[int]:
        ids: list[int] = []
        for position, chunk in enumerate(text.split(IMAGE_PLACEHOLDER)):
            if position:
                ids.append(IMAGE_TOKEN_INDEX)
            ids.extend(self._encode_text(chunk))
        return ids

    def encode(self, turns: Sequence[Turn]) -> EncodedConversation:
        """Encode `turns`; a question may hold at most one `<image>` (xtuner asserts it)."""
        template = self.template
        input_ids = [self.tokenizer.bos_token_id]
        labels = [IGNORE_INDEX]
        for number, turn in enumerate(turns):
            if turn.question.count(IMAGE_PLACEHOLDER) > 1:
                raise ValueError(f"turn {number} question holds more than one {IMAGE_PLACEHOLDER}")
            prompt = template.instruction.format(input=turn.question)
            if number == 0:
                prompt = template.system + prompt
            question = self._encode_chunks(prompt)
            answer = self._encode_chunks(turn.answer + template.suffix)
            input_ids += question + answer
            labels += [IGNORE_INDEX] * len(question) + answer
        return EncodedConversation(tuple(input_ids), tuple(labels))


__all__ = [
    "GCG_QUESTIONS",
    "REFERRING_QUESTION",
    "ConversationEncoder",
    "EncodedConversation",
    "Turn",
    "ilvc_phrase",
    "llava_turns",
    "referring_answer",
    "tag_caption",
    "with_image_first",
]
