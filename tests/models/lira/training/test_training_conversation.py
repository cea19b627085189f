"""ILVC answer format, LLaVA turns and xtuner's encoding (labels: system and user ignored, assistant supervised)."""

from __future__ import annotations

import pytest
from tiny_data import TOKENIZER

from harness.errors import DataError
from models.lira.model import IGNORE_INDEX
from models.lira.tokenizer import IMAGE_TOKEN_INDEX, load_lira_tokenizer
from models.lira.training.conversation import (
    GCG_QUESTIONS,
    ConversationEncoder,
    Turn,
    llava_turns,
    referring_answer,
    tag_caption,
)

SYSTEM = (
    "<|im_start|>system\n你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, "
    "是一个有用无害的人工智能助手。<|im_end|>"
)
TAG = "[SEG]<image_id><image> <p> {} </p> [SEG]"


def test_phrases_are_wrapped_from_the_right() -> None:
    caption = "the red box and the blue box"
    assert tag_caption(caption, [(16, 28), (0, 11)]) == (
        TAG.format("the red box") + " and " + TAG.format("the blue box")
    )
    assert referring_answer("the man") == "[SEG]<image_id><image> <p> the man </p> [SEG]."


def test_gcg_questions_in_the_original_order() -> None:
    assert GCG_QUESTIONS[0].startswith("Could you please give me a detailed description of the image?")
    assert GCG_QUESTIONS[1].startswith("Can you provide a thorough description of the this image?")
    assert len(set(GCG_QUESTIONS)) == 6


def test_llava_turns_follow_llava_map_fn() -> None:
    messages = [
        {"from": "gpt", "value": "dropped"},
        {"from": "human", "value": "What is this? <image>"},
        {"from": "human", "value": " And that?"},
        {"from": "gpt", "value": "A box."},
        {"from": "human", "value": "Colour?"},
        {"from": "gpt", "value": "Red."},
        {"from": "human", "value": "unanswered"},
    ]
    assert llava_turns(messages, "x") == [
        Turn("<image>\nWhat is this? And that?", "A box."),
        Turn("Colour?", "Red."),
    ]
    with pytest.raises(DataError, match=r"x: conversations\[0\] has 'from' 'system'"):
        llava_turns([{"from": "system", "value": "s"}], "x")


def test_encoding_masks_questions_and_supervises_answers() -> None:
    tokenizer = load_lira_tokenizer(TOKENIZER, expected_ids=None)

    def enc(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False)

    turns = [Turn("<image>\nPlease segment a box.", TAG.format("a box") + "."), Turn("Again?", "No.")]
    encoded = ConversationEncoder(tokenizer).encode(turns)
    question1 = [
        *enc(SYSTEM + "<|im_start|>user\n"),
        IMAGE_TOKEN_INDEX,
        *enc("\nPlease segment a box.<|im_end|><|im_start|>assistant\n"),
    ]
    answer1 = [*enc("[SEG]<image_id>"), IMAGE_TOKEN_INDEX, *enc(" <p> a box </p> [SEG].<|im_end|>")]
    question2 = enc("<|im_start|>user\nAgain?<|im_end|><|im_start|>assistant\n")
    answer2 = enc("No.<|im_end|>")
    assert list(encoded.input_ids) == [1, *question1, *answer1, *question2, *answer2]
    ignored = [IGNORE_INDEX]
    assert list(encoded.labels) == [
        *ignored,
        *ignored * len(question1),
        *answer1,
        *ignored * len(question2),
        *answer2,
    ]
    seg, image_id, im_end = 300, 305, 289
    assert answer1.count(seg) == 2 and image_id in answer1 and answer1[-1] == im_end
    assert encoded.input_ids.count(1) == 1  # one BOS: internvl2_chat's <|im_end|> ends turns, no EOS

    with pytest.raises(ValueError, match="more than one <image>"):
        ConversationEncoder(tokenizer).encode([Turn("<image> <image>", "x")])
