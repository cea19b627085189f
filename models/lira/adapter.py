"""LIRA as an attreval model adapter: ``lira-2b`` and ``lira-8b`` from the official weight files, ``lira-tiny``
with seeded random weights.

Each request kind runs as the original script for it (lira-model.md §12-14, metrics.md §1.5, §2.1, §4.5, §5):

- ``referring_segmentation`` (``refcoco_lira.py``): the task's prompt (``Please segment {sent.lower()}.``) in the
  internvl2_chat template with BOS; greedy, EOS and the stop words ``<|im_end|>`` and ``<image_id>`` (so no ILVC
  crop); the mask of the first `[SEG]` that was fed back (its step's last-layer state), post-processed to the
  image size; no `[SEG]` fed, no mask. Text: the decoded answer.
- ``grounded_caption`` (``gcg_lira.py`` ``base_generate``): no BOS; greedy until ``<|im_end|>``; every fed `[SEG]`
  gives a mask; on ``<image_id>`` (with a mask so far) the latest mask is kept, its highlight crop is encoded as
  one tile and ``[<image_id>, crop tokens, " <p>"]`` is fed. Text: the per-token decodes joined, ``" <p>"`` after
  each such ``<image_id>``, ``"[SEG]<image_id>"`` removed, then GLaMM's newline / double-space clean-up; phrases:
  the ``<p>…</p>`` contents, paired in order with the kept masks. The request's retry prompts are tried in order
  while no mask is kept (the answer of the last prompt tried is returned; ``metadata["prompt_index"]``).
- ``caption`` (``evaluate_chair.py``): the same loop; text with ``[SEG]``, ``<image_id>``, ``<p>``, ``</p>``,
  ``<|im_end|>`` removed and spaces collapsed as there. (The original crashes on ``<image_id>`` before any
  `[SEG]`; here that ``<image_id>`` is fed as a plain token, as ``gcg_lira.py`` does.)
- ``vqa`` (``LIRA.chat_clean``: POPE, AttrEval): no BOS; transformers 4.37 ``generate`` semantics: EOS, the stop word
  ``<|im_end|>``, ``min_new_tokens`` and ``num_beams`` from the request (greedy or 4.37 beam search); text decoded
  with special tokens skipped.

Images: InternVL tiles per task (`ORIGINAL_TILES`: 4-12 for referring segmentation, 1-6 GCG and captions, 4-8 POPE,
4-6 AttrEval and other VQA; override with ``tiles=FAMILY_OR_KIND:MIN-MAX;...``), the OMG input padded to a square.
Requests are decoded together (`models.lira.generation`); `[SEG]` probes (`models.lira.probes`) are recorded when
a request asks for them (not under beam search).
"""

from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from harness import masks as rle_masks
from harness.errors import DataError, UserError
from harness.model import ModelAdapter
from harness.types import REQUEST_KINDS, Prediction, Request, SegProbe
from harness.vocabulary import WORD_LISTS
from models.lira.assets.tiny_tokenizer import FOLDER as TINY_TOKENIZER
from models.lira.checkpoint.common import CheckpointError, resolve_dtype
from models.lira.checkpoint.lira import apply_lira_pth, build_random_lira, load_lira
from models.lira.config import LiraConfig
from models.lira.config import preset as lira_preset
from models.lira.generation import (
    BeamRequest,
    GreedyHooks,
    GreedyRequest,
    LlamaDecoderStep,
    StepOutput,
    beam_search_decode,
    greedy_decode,
)
from models.lira.model import LiraModel
from models.lira.probes import ProbeVocabulary, SegProber
from models.lira.processor import (
    ORIGINAL_TILES,
    TileSetting,
    highlight_crop,
    preprocess_internvl,
    preprocess_omg,
)
from models.lira.segmentation import OmgSegMemory
from models.lira.tokenizer import (
    ILVC_CONTINUATION,
    INTERNVL2_CHAT,
    InternLM2Tokenizer,
    TokenizerLayoutError,
    build_prompt,
    load_lira_tokenizer,
    tokenize_prompt,
)

KIND_TILES: dict[str, TileSetting] = {
    "referring_segmentation": ORIGINAL_TILES.referring_segmentation,
    "grounded_caption": ORIGINAL_TILES.grounded_caption,
    "caption": ORIGINAL_TILES.chair,
    "vqa": ORIGINAL_TILES.vqa,
}
"""Tiles per request kind: the script that runs it (``refcoco_lira.py``, ``gcg_lira.py``, CHAIR, VQA)."""
VQA_FAMILY_TILES: dict[str, TileSetting] = {"pope": ORIGINAL_TILES.pope, "attreval": ORIGINAL_TILES.attreval}
"""VQA families whose ``eval_lira.sh`` line sets other tiles than the VQA default."""

LOCAL_CROP_TILES = ORIGINAL_TILES.local_crop
GCG_DROP = "[SEG]<image_id>"
CHAIR_TAGS = ("[SEG]", "<image_id>", "<p>", "</p>", "<|im_end|>")
PHRASE = re.compile(r"<p>(.*?)<\/p>")

DOWNLOADS = {
    "weights": "https://huggingface.co/echo840/LIRA (folder model_weight/)",
    "internvl": "https://huggingface.co/OpenGVLab/{internvl}",
    "omg_seg": "https://huggingface.co/echo840/LIRA (folder pretrained/omg_llava/)",
    "class_embeddings": "https://huggingface.co/echo840/LIRA (folder pretrained/omg_llava/)",
}
"""Where each weight file of the original layout comes from (lira-model.md §11.1)."""


# ---------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------


def parse_tiles(items: Sequence[str]) -> dict[str, TileSetting]:
    """``("refcoco:1-6", "vqa:4-8")`` -> per task family or request kind, the tile bounds (thumbnail on)."""
    settings: dict[str, TileSetting] = {}
    for item in items:
        match = re.fullmatch(r"\s*([\w+.-]+)\s*:\s*(\d+)\s*-\s*(\d+)\s*", item)
        if match is None:
            raise UserError(f"tiles item {item!r} must look like FAMILY_OR_KIND:MIN-MAX, e.g. refcoco:4-12")
        try:
            settings[match.group(1)] = TileSetting(int(match.group(2)), int(match.group(3)))
        except ValueError as error:
            raise UserError(f"tiles item {item!r}: {error}") from None
    return settings


def resolve_device(device: str) -> torch.device:
    """``auto``: this rank's GPU when CUDA is available (``LOCAL_RANK`` under torchrun), else the CPU."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise UserError(f"device {device!r}: {error}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} was asked for, but CUDA is not available")
    return resolved


def resolve_model_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: bfloat16 on CUDA (as the original evaluation casts the model), float32 on the CPU."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return resolve_dtype(dtype)
    except ValueError as error:
        raise UserError(str(error)) from None


def with_attention(config: LiraConfig, implementation: str) -> LiraConfig:
    """The config with another attention implementation (``eager`` or ``sdpa``) for both transformers."""
    if implementation not in ("eager", "sdpa"):
        raise UserError(f"attention must be eager or sdpa, got {implementation!r}")
    return replace(config, vision_language=replace(config.vision_language, attn_implementation=implementation))


def read_word_lists(path: Path | None) -> Mapping[str, Sequence[str]]:
    """The probe word lists: a JSON file ``{"list name": ["word", ...]}``, or LIRA's four lists."""
    if path is None:
        return WORD_LISTS
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"probe word lists {path}: {error}") from None
    if not isinstance(data, dict) or not all(
        isinstance(words, list) and all(isinstance(word, str) for word in words) for words in data.values()
    ):
        raise DataError(f'probe word lists {path}: expected {{"list name": ["word", ...], ...}}')
    return data


# ---------------------------------------------------------------------------
# The engine: model + tokenizer + image processing
# ---------------------------------------------------------------------------


@dataclass
class ImageEncoding:
    """One image as LIRA sees it: the visual sequence spliced at ``<image>`` and what `[SEG]` decoding needs."""

    image: Image.Image
    sequence: Tensor
    memory: OmgSegMemory
    num_tiles: int

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``."""
        return self.image.size


Mode = Literal["referring", "ilvc", "chat"]


@dataclass
class _Session(GreedyHooks):
    """One request's decoding: `[SEG]` states and masks, kept masks, text pieces and probes."""

    engine: LiraEngine
    encoding: ImageEncoding
    mode: Mode
    want_probes: bool
    seg_states: list[Tensor] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    kept: list[np.ndarray] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)
    probes: list[SegProbe] = field(default_factory=list)

    def on_fed(self, token: int, index: int, output: StepOutput, row: int) -> None:
        if self.want_probes:
            layers = None if output.layers is None else [state[row] for state in output.layers]
            self.probes.append(self.engine.prober.probe(index, output.logits[row], layers))
        if self.mode == "ilvc":
            self.masks.append(self.engine.seg_mask(output.hidden[row], self.encoding))
        elif self.mode == "referring":
            self.seg_states.append(output.hidden[row])

    def on_token(self, token: int, finished: bool) -> Tensor | None:
        if self.mode != "ilvc":
            return None
        engine = self.engine
        self.pieces.append(engine.tokenizer.decode(token))
        if token != engine.image_id or not self.masks:
            return None
        self.kept.append(self.masks[-1])
        self.pieces.append(ILVC_CONTINUATION)
        return None if finished else engine.crop_chunk(self.encoding.image, self.masks[-1])


class LiraEngine:
    """A `LiraModel` and its tokenizer answering harness requests.

    Args:
        model: the model (eval mode, on its device).
        tokenizer: the tokenizer it was trained with; its ids of ``[SEG]``, ``<p>``, ``<image_id>``,
            ``<|im_end|>`` and ``<|im_start|>`` must be the config's (92553, 92554, 92558, 92542, 92543 for
            LIRA-2B/8B, lira-model.md §5), and it must not have more tokens than the model.
        tiles: tile bounds per task family or request kind, over the original scripts' (`KIND_TILES`).
        word_lists: probe word lists (default LIRA's).
        probe_top_k: top tokens kept per probe.
        probe_layers: add per-layer word logits to probes.
        cached_images: how many encoded images to keep between calls (consecutive requests often share one).

    Raises:
        TokenizerLayoutError: the tokenizer and the model disagree on token ids.
    """

    def __init__(
        self,
        model: LiraModel,
        tokenizer: InternLM2Tokenizer,
        *,
        tiles: Mapping[str, TileSetting] | None = None,
        word_lists: Mapping[str, Sequence[str]] = WORD_LISTS,
        probe_top_k: int = 10,
        probe_layers: bool = False,
        cached_images: int = 4,
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        config = model.config
        expected = {
            "[SEG]": config.added_tokens.seg,
            "<p>": config.added_tokens.p_start,
            "<image_id>": config.added_tokens.image_id,
            "<|im_end|>": config.vision_language.chat_tokens.im_end,
            "<|im_start|>": config.vision_language.chat_tokens.im_start,
        }
        found_ids = {token: tokenizer.token_to_id(token) for token in expected}
        wrong = {token: got for token, got in found_ids.items() if got != expected[token]}
        vocab = config.vision_language.text.vocab_size
        if wrong or len(tokenizer) > vocab:
            found = ", ".join(f"{token} -> {got} (model: {expected[token]})" for token, got in wrong.items())
            raise TokenizerLayoutError(
                f"{tokenizer.model_file.parent}: tokenizer does not fit the model "
                f"({found or f'{len(tokenizer)} tokens for a vocabulary of {vocab}'})"
            )
        self.seg_id, self.image_id = config.added_tokens.seg, config.added_tokens.image_id
        self.im_end_id, self.eos_id = config.vision_language.chat_tokens.im_end, tokenizer.eos_token_id
        self.tiles = dict(tiles or {})
        self.tile_size = config.vision_language.vision.image_size
        self.step = LlamaDecoderStep(model.language_model)
        self.prober = SegProber(
            vocabulary=ProbeVocabulary.build(tokenizer, word_lists),
            top_k=probe_top_k,
            final_norm=model.language_model.model.norm,
            lm_head=model.language_model.lm_head,
            token_text=tokenizer.id_to_token,
        )
        self.probe_layers = probe_layers
        self.continuation_ids = tokenizer.encode(ILVC_CONTINUATION)[1:]
        self.cached_images = cached_images
        self._encodings: OrderedDict[tuple[str, TileSetting], ImageEncoding] = OrderedDict()

    # -- inputs -----------------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.model.language_model.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.language_model.lm_head.weight.dtype

    def tile_setting(self, request: Request) -> TileSetting:
        """The request's tile bounds: an override for its family, then for its kind, then the original's."""
        for key in (request.task_family, request.kind):
            if key in self.tiles:
                return self.tiles[key]
        if request.kind == "vqa":
            return VQA_FAMILY_TILES.get(request.task_family, KIND_TILES["vqa"])
        return KIND_TILES[request.kind]

    @torch.no_grad()
    def encode_image(self, path: str, setting: TileSetting) -> ImageEncoding:
        """Both branches of one image (each image alone, so its encoding never depends on the batch)."""
        key = (path, setting)
        if key in self._encodings:
            self._encodings.move_to_end(key)
            return self._encodings[key]
        try:
            with Image.open(path) as opened:
                image = opened.convert("RGB")
        except OSError as error:
            raise DataError(f"image {path}: cannot be read ({error})") from None
        config = self.model.config
        tiles = preprocess_internvl(image, setting, tile_size=self.tile_size)
        omg = preprocess_omg(image, size=config.seg_image_size)[None].to(self.device)
        encoded = self.model.encode_images(omg, [tiles.pixel_values.to(self.device, self.dtype)])
        encoding = ImageEncoding(image, encoded.sequences[0], encoded.omg.memory, tiles.num_tiles)
        self._encodings[key] = encoding
        while len(self._encodings) > self.cached_images:
            self._encodings.popitem(last=False)
        return encoding

    @torch.no_grad()
    def prompt_embeddings(self, question: str, encoding: ImageEncoding, *, bos: bool) -> Tensor:
        """The internvl2_chat prompt of ``question`` with the image's visual sequence spliced in: `(L, H)`."""
        ids = tokenize_prompt(self.tokenizer, build_prompt(question), bos=bos).input_ids
        spliced = self.model.build_inputs_embeds(torch.tensor([ids], device=self.device), [[encoding.sequence]])
        return spliced.inputs_embeds[0]

    @torch.no_grad()
    def embed(self, tokens: Sequence[int]) -> Tensor:
        return self.model.embed_tokens(torch.tensor([list(tokens)], device=self.device))[0]

    def decode(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(tokens)

    # -- [SEG] and ILVC -------------------------------------------------------------------------------------

    @torch.no_grad()
    def seg_mask(self, hidden: Tensor, encoding: ImageEncoding) -> np.ndarray:
        """The `(height, width)` uint8 mask of one `[SEG]` state on its image (lira-model.md §6)."""
        zero = torch.zeros(1, dtype=torch.long, device=self.device)
        mask = self.model.seg_hidden_states_to_masks(hidden[None], encoding.memory, zero, [encoding.size])[0]
        return mask.cpu().numpy().astype(np.uint8)

    @torch.no_grad()
    def crop_chunk(self, image: Image.Image, mask: np.ndarray) -> Tensor:
        """``[embed(<image_id>), 256 crop tokens, embed(" <p>")]`` for the highlight crop of ``mask`` (§7.2)."""
        crop = preprocess_internvl(highlight_crop(image, mask), LOCAL_CROP_TILES, tile_size=self.tile_size)
        tokens = self.model.encode_local_crops(crop.pixel_values.to(self.device, self.dtype))[0]
        return torch.cat([self.embed([self.image_id]), tokens.to(self.dtype), self.embed(self.continuation_ids)])

    # -- requests -------------------------------------------------------------------------------------------

    @torch.no_grad()
    def predict(self, requests: Sequence[Request]) -> list[Prediction]:
        """Answer ``requests`` (any mix of kinds), decoding requests of the same kind together."""
        for request in requests:
            if request.kind not in REQUEST_KINDS:
                raise UserError(f"request {request.sample_id!r}: unknown kind {request.kind!r}")
            if not request.generation.greedy:
                raise UserError(f"task {request.task!r} asks for sampling; LIRA decodes greedily or with beams")
        results: dict[int, Prediction] = {}
        groups: dict[tuple[str, bool], list[int]] = {}
        for index, request in enumerate(requests):
            beams = request.kind == "vqa" and request.generation.num_beams > 1
            groups.setdefault((request.kind, beams), []).append(index)
        for (kind, beams), indices in groups.items():
            chosen = [requests[i] for i in indices]
            if kind == "referring_segmentation":
                answers = self._referring(chosen)
            elif kind in ("grounded_caption", "caption"):
                answers = self._ilvc(chosen)
            elif beams:
                answers = self._beam_vqa(chosen)
            else:
                answers = self._greedy_vqa(chosen)
            results.update(zip(indices, answers, strict=True))
        return [results[i] for i in range(len(requests))]

    def _session(self, request: Request, mode: Mode) -> tuple[_Session, Tensor]:
        encoding = self.encode_image(request.image, self.tile_setting(request))
        prompt = self.prompt_embeddings(request.prompt, encoding, bos=mode == "referring")
        return _Session(self, encoding, mode, request.want_probes), prompt

    def _greedy(self, request: Request, session: _Session, prompt: Tensor) -> GreedyRequest:
        generation = request.generation
        if session.mode == "ilvc":
            end, stops = frozenset({self.im_end_id}), tuple(generation.stop)
        else:
            end = frozenset({self.eos_id})
            extra = ("<image_id>",) if session.mode == "referring" else ()
            stops = (*INTERNVL2_CHAT.stop_words, *extra, *generation.stop)
        watch = frozenset({self.seg_id}) if session.mode != "chat" or session.want_probes else frozenset()
        return GreedyRequest(
            prompt=prompt,
            max_new_tokens=generation.max_new_tokens,
            min_new_tokens=generation.min_new_tokens,
            end_tokens=end,
            suppressed=end,
            stop_words=stops,
            watch=watch,
            layers=session.want_probes and self.probe_layers,
            hooks=session,
        )

    def _answer(
        self,
        session: _Session,
        prompt: Tensor,
        tokens: list[int],
        text: str,
        masks: Sequence[np.ndarray] = (),
        phrases: tuple[str, ...] = (),
        **metadata: object,
    ) -> Prediction:
        return Prediction(
            text=text,
            masks=tuple(rle_masks.encode(mask) for mask in masks),
            phrases=phrases,
            probes=tuple(session.probes),
            prompt_tokens=int(prompt.shape[0]),
            generated_tokens=len(tokens),
            metadata={"tiles": session.encoding.num_tiles, **metadata},
        )

    def _decode_greedy(
        self, requests: Sequence[Request], prepared: Sequence[tuple[_Session, Tensor]]
    ) -> list[list[int]]:
        rows = [self._greedy(r, s, p) for r, (s, p) in zip(requests, prepared, strict=True)]
        return greedy_decode(self.step, self.embed, self.decode, rows)

    def _referring(self, requests: Sequence[Request]) -> list[Prediction]:
        prepared = [self._session(request, "referring") for request in requests]
        answers = []
        for (session, prompt), tokens in zip(prepared, self._decode_greedy(requests, prepared), strict=True):
            # refcoco_lira.py: the first fed [SEG] only
            found = [self.seg_mask(session.seg_states[0], session.encoding)] if session.seg_states else []
            answers.append(self._answer(session, prompt, tokens, self.tokenizer.decode(tokens).strip(), found))
        return answers

    def _greedy_vqa(self, requests: Sequence[Request]) -> list[Prediction]:
        prepared = [self._session(request, "chat") for request in requests]
        return [
            self._answer(session, prompt, tokens, self.tokenizer.decode(tokens, skip_special_tokens=True))
            for (session, prompt), tokens in zip(prepared, self._decode_greedy(requests, prepared), strict=True)
        ]

    def _beam_vqa(self, requests: Sequence[Request]) -> list[Prediction]:
        prepared = [self._session(request, "chat") for request in requests]
        beams = [
            BeamRequest(
                prompt=prompt,
                num_beams=request.generation.num_beams,
                max_new_tokens=request.generation.max_new_tokens,
                min_new_tokens=request.generation.min_new_tokens,
                eos_tokens=(self.eos_id,),
                stop_words=(*INTERNVL2_CHAT.stop_words, *request.generation.stop),
            )
            for request, (_, prompt) in zip(requests, prepared, strict=True)
        ]
        decoded = beam_search_decode(self.step, self.embed, self.decode, beams)
        return [
            self._answer(
                session,
                prompt,
                tokens,
                self.tokenizer.decode(tokens, skip_special_tokens=True),
                num_beams=request.generation.num_beams,
            )
            for request, (session, prompt), tokens in zip(requests, prepared, decoded, strict=True)
        ]

    def _ilvc(self, requests: Sequence[Request]) -> list[Prediction]:
        """``base_generate`` for every request; grounded captions retry their prompts while no mask is kept."""
        results: dict[int, tuple[_Session, Tensor, list[int], int]] = {}
        pending = list(range(len(requests)))
        attempt = 0
        while pending:
            chosen = [requests[i] for i in pending]
            questions = [replace(r, prompt=[r.prompt, *r.retry_prompts][attempt]) for r in chosen]
            prepared = [self._session(question, "ilvc") for question in questions]
            for index, (session, prompt), tokens in zip(
                pending, prepared, self._decode_greedy(chosen, prepared), strict=True
            ):
                results[index] = (session, prompt, tokens, attempt)
            attempt += 1
            pending = [
                i
                for i in pending
                if requests[i].kind == "grounded_caption"
                and not results[i][0].kept
                and attempt <= len(requests[i].retry_prompts)
            ]
        answers = []
        for request, (session, prompt, tokens, tried) in zip(
            requests, (results[i] for i in range(len(requests))), strict=True
        ):
            raw = "".join(session.pieces)
            if request.kind == "caption":
                answers.append(self._answer(session, prompt, tokens, chair_caption(raw)))
            else:
                text, phrases = gcg_output(raw)
                answers.append(self._answer(session, prompt, tokens, text, session.kept, phrases, prompt_index=tried))
        return answers


def chair_caption(raw: str) -> str:
    """``evaluate_chair.py``: LIRA's tags removed, triple then double spaces collapsed once, stripped."""
    for tag in CHAIR_TAGS:
        raw = raw.replace(tag, "")
    return raw.replace("   ", " ").replace("  ", " ").strip()


def gcg_output(raw: str) -> tuple[str, tuple[str, ...]]:
    """``gcg_lira.py``: ``"[SEG]<image_id>"`` removed, then ``process_and_save_output``'s clean-up (``<s>`` and
    newlines removed, double spaces halved, the text after the last ``"ASSISTANT: "``), and the phrases: every
    ``<p>…</p>`` content, stripped. The caption's tags are left for the metrics' GLaMM cleaning."""
    text = raw.replace(GCG_DROP, "").replace("<s>", "").replace("\n", "").replace("  ", " ").split("ASSISTANT: ")[-1]
    return text, tuple(phrase.strip() for phrase in PHRASE.findall(text))


# ---------------------------------------------------------------------------
# Adapters
# ---------------------------------------------------------------------------


class _LiraAdapterBase(ModelAdapter):
    capabilities = frozenset({"text", "masks", "probes"})
    request_kinds = frozenset(REQUEST_KINDS)
    engine: LiraEngine

    def predict(self, requests: Sequence[Request]) -> list[Prediction]:
        return self.engine.predict(requests)


@dataclass(frozen=True)
class RuntimeOptions:
    """The options every LIRA adapter shares, checked and resolved (``auto`` replaced by what it means here)."""

    device: torch.device
    dtype: torch.dtype
    attention: str
    tiles: dict[str, TileSetting]
    word_lists: Mapping[str, Sequence[str]]
    probe_words: Path | None
    probe_top_k: int
    probe_layers: bool
    threads: int | None

    @classmethod
    def resolve(
        cls,
        dtype: str,
        device: str,
        attention: str,
        tiles: Sequence[str],
        probe_words: Path | None,
        probe_top_k: int,
        probe_layers: bool,
        threads: int | None,
    ) -> RuntimeOptions:
        """Check the options (`UserError`/`DataError` on bad ones) and apply ``threads``."""
        if probe_top_k < 0:
            raise UserError(f"probe_top_k must be 0 or more, got {probe_top_k}")
        if threads is not None and threads < 1:
            raise UserError(f"threads must be at least 1, got {threads}")
        settings = parse_tiles(tiles)
        word_lists = read_word_lists(probe_words)
        resolved_device = resolve_device(device)
        resolved_dtype = resolve_model_dtype(dtype, resolved_device)
        implementation = ("sdpa" if resolved_device.type == "cuda" else "eager") if attention == "auto" else attention
        if threads is not None:
            torch.set_num_threads(threads)
        return cls(
            resolved_device,
            resolved_dtype,
            implementation,
            settings,
            word_lists,
            probe_words,
            probe_top_k,
            probe_layers,
            threads,
        )

    def recorded(self) -> dict[str, object]:
        """The options as ``results.json`` records them (and the fingerprint hashes them): resolved values."""
        return {
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            "attention": self.attention,
            "tiles": ";".join(f"{key}:{tile.min_tiles}-{tile.max_tiles}" for key, tile in sorted(self.tiles.items())),
            "probe_words": str(self.probe_words),
            "probe_top_k": self.probe_top_k,
            "probe_layers": self.probe_layers,
            "threads": self.threads,
        }

    def config(self, name: str) -> LiraConfig:
        """The preset with this attention implementation."""
        return with_attention(lira_preset(name), self.attention)

    def engine(self, model: LiraModel, tokenizer: InternLM2Tokenizer) -> LiraEngine:
        return LiraEngine(
            model,
            tokenizer,
            tiles=self.tiles,
            word_lists=self.word_lists,
            probe_top_k=self.probe_top_k,
            probe_layers=self.probe_layers,
        )


class LiraAdapter(_LiraAdapterBase):
    """LIRA-2B / LIRA-8B from the official files, in the original repository's layout by default.

    Args:
        preset: ``lira-2b`` or ``lira-8b`` (fixed by the registered name).
        weights: the LIRA ``.pth`` (default ``model_weight/LIRA-2B.pth`` / ``LIRA-8B.pth``).
        internvl: the InternVL2 folder with its tokenizer (default ``pretrained/InternVL2-2B`` / ``-8B``).
        omg_seg: OMG-Seg weights (default ``pretrained/omg_llava/omg_seg_convl.pth``).
        class_embeddings: the open-vocabulary classifier (default
            ``pretrained/omg_llava/convnext_large_d_320_CocoPanopticOVDataset.pth``).
        dtype: ``auto`` (bfloat16 on CUDA as the original evaluation, float32 on the CPU), ``float32``,
            ``bfloat16``, ``float16``; OMG-Seg stays float32.
        device: ``auto`` (this rank's GPU, else the CPU), or e.g. ``cuda:1``, ``cpu``.
        attention: ``auto`` (eager on the CPU, sdpa on GPUs), ``eager`` or ``sdpa``.
        tiles: InternVL tile bounds per task family or request kind, ``FAMILY_OR_KIND:MIN-MAX;...``.
        probe_words: a JSON file of probe word lists (default LIRA's four lists).
        probe_top_k: top tokens per `[SEG]` probe.
        probe_layers: per-layer word logits in probes.
        threads: torch threads of the process (default: torch's choice).
    """

    def __init__(
        self,
        preset: Literal["lira-2b", "lira-8b"],
        weights: Path | None = None,
        internvl: Path | None = None,
        omg_seg: Path | None = None,
        class_embeddings: Path | None = None,
        dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto",
        device: str = "auto",
        attention: Literal["auto", "eager", "sdpa"] = "auto",
        tiles: tuple[str, ...] = (),
        probe_words: Path | None = None,
        probe_top_k: int = 10,
        probe_layers: bool = False,
        threads: int | None = None,
    ) -> None:
        runtime = RuntimeOptions.resolve(
            dtype, device, attention, tiles, probe_words, probe_top_k, probe_layers, threads
        )
        size = preset.removeprefix("lira-").upper()
        files = {
            "weights": weights or Path("model_weight") / f"LIRA-{size}.pth",
            "internvl": internvl or Path("pretrained") / f"InternVL2-{size}",
            "omg_seg": omg_seg or Path("pretrained/omg_llava/omg_seg_convl.pth"),
            "class_embeddings": class_embeddings
            or Path("pretrained/omg_llava/convnext_large_d_320_CocoPanopticOVDataset.pth"),
        }
        super().__init__(preset=preset, **{key: str(value) for key, value in files.items()}, **runtime.recorded())
        self.files = files
        missing = [
            f"{key}={path} ({DOWNLOADS[key].format(internvl=f'InternVL2-{size}')})"
            for key, path in files.items()
            if not (path.is_dir() if key == "internvl" else path.is_file())
        ]
        if missing:
            raise DataError(
                f"{preset}: missing weight file(s): {'; '.join(missing)}. Download them into the original layout "
                "under the current folder, or give their paths with --model-args KEY=PATH"
            )
        try:
            tokenizer = load_lira_tokenizer(files["internvl"], expected_ids=None)  # checked against the model below
            model, _ = load_lira(
                runtime.config(preset),
                files["internvl"],
                files["omg_seg"],
                files["class_embeddings"],
                files["weights"],
                dtype=runtime.dtype,
                device=runtime.device,
            )
        except CheckpointError as error:
            raise DataError(f"{preset}: {error}") from None
        self.preferred_batch_size = 8 if runtime.device.type == "cuda" else 1
        self.engine = runtime.engine(model, tokenizer)

    def weight_files(self) -> list[Path]:
        folder = self.files["internvl"]
        inside = sorted(
            path
            for pattern in ("*.safetensors", "*.bin", "config.json", "tokenizer.model", "tokenizer_config.json")
            for path in folder.glob(pattern)
        )
        return [self.files["weights"], *inside, self.files["omg_seg"], self.files["class_embeddings"]]


class LiraTinyAdapter(_LiraAdapterBase):
    """``lira-tiny``: the LIRA architecture at tiny widths with seeded random weights and the bundled tokenizer
    (`models.lira.assets`): the whole pipeline in seconds on a CPU, for demos and tests. Its answers are noise.

    Args:
        seed: seed of the random weights.
        weights: a LIRA `.pth` trained from this model (`models.lira.training`, e.g. with a ``lira-tiny`` config),
            applied on top of the seeded weights with its LoRA merged.
        dtype, device, attention, tiles, probe_words, probe_top_k, probe_layers: as for ``lira-2b``.
        threads: torch threads of the process; 1 by default, since the tiny model's operations are too small to
            split (two threads are several times slower on a 2-core machine); None keeps torch's choice.
    """

    preferred_batch_size = 8

    def __init__(
        self,
        seed: int = 0,
        weights: Path | None = None,
        dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto",
        device: str = "auto",
        attention: Literal["auto", "eager", "sdpa"] = "auto",
        tiles: tuple[str, ...] = (),
        probe_words: Path | None = None,
        probe_top_k: int = 10,
        probe_layers: bool = False,
        threads: int | None = 1,
    ) -> None:
        runtime = RuntimeOptions.resolve(
            dtype, device, attention, tiles, probe_words, probe_top_k, probe_layers, threads
        )
        recorded_weights = {} if weights is None else {"weights": str(weights)}
        super().__init__(seed=seed, **recorded_weights, **runtime.recorded())
        self.weights = weights
        model = build_random_lira(runtime.config("lira-tiny"), seed, dtype=runtime.dtype, device=runtime.device)
        if weights is not None:
            if not weights.is_file():
                raise DataError(f"lira-tiny: weights={weights} does not exist")
            try:
                apply_lira_pth(model, weights, merge=True)
            except CheckpointError as error:
                raise DataError(f"lira-tiny weights: {error}") from None
        self.engine = runtime.engine(model, load_lira_tokenizer(TINY_TOKENIZER, expected_ids=None))

    def weight_files(self) -> list[Path]:
        tokenizer = [TINY_TOKENIZER / "tokenizer.model", TINY_TOKENIZER / "tokenizer_config.json"]
        return tokenizer if self.weights is None else [self.weights, *tokenizer]


__all__ = [
    "KIND_TILES",
    "VQA_FAMILY_TILES",
    "ImageEncoding",
    "LiraAdapter",
    "LiraEngine",
    "LiraTinyAdapter",
    "RuntimeOptions",
    "chair_caption",
    "gcg_output",
    "parse_tiles",
    "read_word_lists",
    "resolve_device",
    "resolve_model_dtype",
    "with_attention",
]
