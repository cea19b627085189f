"""Typed records that flow through the harness: Sample -> Request -> Prediction.

Every record is a frozen dataclass that round-trips through JSON (`to_dict` / `from_dict`), so
predictions can be cached, replayed and compared. Masks travel as COCO RLE with string counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypedDict, get_args

RequestKind = Literal["referring_segmentation", "grounded_caption", "caption", "vqa"]
REQUEST_KINDS: tuple[str, ...] = get_args(RequestKind)

Capability = Literal["text", "masks", "probes", "reference"]
"""What an adapter can produce: text answers, masks, `[SEG]` probes, or the ground truth itself."""


class RLE(TypedDict):
    """COCO run-length encoding of one binary mask: `size` is [height, width], `counts` compressed."""

    size: list[int]
    counts: str


@dataclass(frozen=True, slots=True)
class TokenScore:
    """One vocabulary entry and its logit."""

    token: str
    logit: float


@dataclass(frozen=True, slots=True)
class SegProbe:
    """What the hidden state at one `[SEG]` token says when the LM head reads it (logit lens).

    Attributes:
        position: index of this `[SEG]` among the generated tokens.
        word_logits: word-list name -> word -> logit (e.g. ``{"category": {"dog": 3.1, ...}}``).
        top_tokens: the top-k tokens of the whole vocabulary, best first.
        layer_word_logits: the same word logits for the hidden state after every layer
            (index 0 = embeddings), when per-layer probes were asked for.
    """

    position: int
    word_logits: dict[str, dict[str, float]]
    top_tokens: tuple[TokenScore, ...] = ()
    layer_word_logits: tuple[dict[str, dict[str, float]], ...] | None = None


@dataclass(frozen=True, slots=True)
class GenerationSettings:
    """Decoding settings a task asks for; adapters honour them or refuse the request kind."""

    max_new_tokens: int = 100
    min_new_tokens: int = 0
    stop: tuple[str, ...] = ()
    greedy: bool = True
    num_beams: int = 1


@dataclass(frozen=True, slots=True)
class Sample:
    """One evaluation unit as a task loads it.

    Attributes:
        sample_id: stable id, unique within the task (e.g. ``"14024:39906"`` for a RefCOCO sentence).
        image: path of the image file.
        target: task-specific ground truth, JSON-serialisable (e.g. ``{"mask": RLE}``).
        inputs: values the prompt template is filled with (e.g. ``{"sentence": "left dog"}``).
        image_size: ``(height, width)`` when the annotations give it.
    """

    sample_id: str
    image: str
    target: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    image_size: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Prediction:
    """What an adapter returns for one request.

    Attributes:
        text: the model's answer, with model-specific control tokens removed.
        masks: predicted masks in output order.
        phrases: grounded phrases; phrase ``i`` belongs to mask ``i``.
        probes: one entry per `[SEG]` token, when the request asked for probes.
        prompt_tokens / generated_tokens: token counts, when the adapter knows them.
        latency_s: model time spent on this request (its share of the batch).
        error: why the request failed; a failed prediction is never cached.
        metadata: adapter-specific details worth keeping (e.g. which prompt of a retry list answered).
    """

    text: str = ""
    masks: tuple[RLE, ...] = ()
    phrases: tuple[str, ...] = ()
    probes: tuple[SegProbe, ...] = ()
    prompt_tokens: int | None = None
    generated_tokens: int | None = None
    latency_s: float | None = None
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Request:
    """Everything an adapter needs to answer one sample; adapters never reach back into datasets.

    Attributes:
        task: registered task name (e.g. ``"refcoco_val"``).
        task_family: benchmark family (e.g. ``"refcoco"``, ``"pope"``); adapters may keep per-family
            settings such as tile counts in their configuration.
        sample_id: the sample this request answers.
        kind: what is asked for; adapters declare which kinds they serve.
        image: path of the image file.
        prompt: the user turn, without any model-specific chat template.
        generation: decoding settings.
        retry_prompts: further prompts to try in order while the answer has no mask (GCG).
        want_probes: record `[SEG]` probes in the prediction.
        image_size: ``(height, width)`` when known.
        reference: the ideal prediction; filled only for adapters with the ``reference`` capability.
    """

    task: str
    task_family: str
    sample_id: str
    kind: RequestKind
    image: str
    prompt: str
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    retry_prompts: tuple[str, ...] = ()
    want_probes: bool = False
    image_size: tuple[int, int] | None = None
    reference: Prediction | None = None


# ---------------------------------------------------------------------------
# JSON round trip
# ---------------------------------------------------------------------------


def to_dict(record: Any) -> Any:
    """Convert a record (or nested records, tuples, dicts) into plain JSON values."""
    if hasattr(record, "__dataclass_fields__"):
        return {f.name: to_dict(getattr(record, f.name)) for f in fields(record)}
    if isinstance(record, (list, tuple)):
        return [to_dict(item) for item in record]
    if isinstance(record, dict):
        return {key: to_dict(value) for key, value in record.items()}
    return record


def _tuple_or_none(value: Any) -> tuple[int, int] | None:
    return None if value is None else (int(value[0]), int(value[1]))


def _rle(value: Any) -> RLE:
    return RLE(size=[int(value["size"][0]), int(value["size"][1])], counts=value["counts"])


def _probe(value: dict[str, Any]) -> SegProbe:
    layers = value.get("layer_word_logits")
    return SegProbe(
        position=int(value["position"]),
        word_logits=value["word_logits"],
        top_tokens=tuple(TokenScore(**item) for item in value.get("top_tokens", ())),
        layer_word_logits=None if layers is None else tuple(layers),
    )


def prediction_from_dict(value: dict[str, Any]) -> Prediction:
    """Inverse of `to_dict` for a `Prediction`."""
    return Prediction(
        text=value.get("text", ""),
        masks=tuple(_rle(m) for m in value.get("masks", ())),
        phrases=tuple(value.get("phrases", ())),
        probes=tuple(_probe(p) for p in value.get("probes", ())),
        prompt_tokens=value.get("prompt_tokens"),
        generated_tokens=value.get("generated_tokens"),
        latency_s=value.get("latency_s"),
        error=value.get("error"),
        metadata=dict(value.get("metadata", {})),
    )


def sample_from_dict(value: dict[str, Any]) -> Sample:
    """Inverse of `to_dict` for a `Sample`."""
    return Sample(
        sample_id=value["sample_id"],
        image=value["image"],
        target=value.get("target", {}),
        inputs=value.get("inputs", {}),
        image_size=_tuple_or_none(value.get("image_size")),
    )


def request_from_dict(value: dict[str, Any]) -> Request:
    """Inverse of `to_dict` for a `Request`."""
    generation = dict(value.get("generation", {}))
    generation["stop"] = tuple(generation.get("stop", ()))
    reference = value.get("reference")
    return Request(
        task=value["task"],
        task_family=value["task_family"],
        sample_id=value["sample_id"],
        kind=value["kind"],
        image=value["image"],
        prompt=value["prompt"],
        generation=GenerationSettings(**generation),
        retry_prompts=tuple(value.get("retry_prompts", ())),
        want_probes=bool(value.get("want_probes", False)),
        image_size=_tuple_or_none(value.get("image_size")),
        reference=None if reference is None else prediction_from_dict(reference),
    )


__all__ = [
    "REQUEST_KINDS",
    "RLE",
    "Capability",
    "GenerationSettings",
    "Prediction",
    "Request",
    "RequestKind",
    "Sample",
    "SegProbe",
    "TokenScore",
    "prediction_from_dict",
    "request_from_dict",
    "sample_from_dict",
    "to_dict",
]
