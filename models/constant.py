"""The constant baseline: the same answer, mask and caption for every request (a lower bound)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from PIL import Image

from harness import masks
from harness.model import ModelAdapter
from harness.types import REQUEST_KINDS, RLE, Prediction, Request

MaskChoice = Literal["none", "empty", "full", "center"]


def constant_mask(choice: MaskChoice, height: int, width: int) -> RLE:
    """An empty mask, the whole image, or the centred box covering the middle half of each side."""
    pixels = np.zeros((height, width), dtype=np.uint8)
    if choice == "full":
        pixels[:] = 1
    elif choice == "center":
        pixels[height // 4 : height - height // 4, width // 4 : width - width // 4] = 1
    return masks.encode(pixels)


class ConstantAdapter(ModelAdapter):
    """Answers ``answer`` to questions, ``caption`` to caption requests and ``mask`` to segmentation.

    Args:
        answer: the text of every ``vqa`` answer.
        mask: ``none`` (no mask at all), ``empty``, ``full`` or ``center``; used by referring
            segmentation and grounded captions.
        caption: the text of every caption and grounded caption.
    """

    capabilities = frozenset({"text", "masks"})
    request_kinds = frozenset(REQUEST_KINDS)
    preferred_batch_size = 256

    def __init__(self, answer: str = "yes", mask: MaskChoice = "empty", caption: str = "a photo") -> None:
        super().__init__(answer=answer, mask=mask, caption=caption)
        self.answer, self.mask, self.caption = answer, mask, caption

    def _mask(self, request: Request) -> tuple[RLE, ...]:
        if self.mask == "none":
            return ()
        if request.image_size is not None:
            height, width = request.image_size
        else:
            with Image.open(request.image) as image:
                width, height = image.size
        return (constant_mask(self.mask, height, width),)

    def predict(self, requests: Sequence[Request]) -> list[Prediction]:
        predictions = []
        for request in requests:
            if request.kind == "vqa":
                predictions.append(Prediction(text=self.answer))
            elif request.kind == "caption":
                predictions.append(Prediction(text=self.caption))
            elif request.kind == "grounded_caption":
                predictions.append(Prediction(text=self.caption, masks=self._mask(request)))
            else:
                predictions.append(Prediction(masks=self._mask(request)))
        return predictions
