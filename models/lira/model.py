"""The whole LIRA model (echo840/LIRA `omg_llava/model/lira.py`, class `LIRA`) in plain PyTorch/transformers.

One image runs through two vision branches; both feed the language model (lira-model.md §1):

- `vision_model`: InternViT (`InternVLVisionModel`); LIRA `vlm_enc`; InternVL2 folder keys `vision_model.*`.
- `mlp1`: `InternVLMultiModalProjector`; LIRA `vlm_mlp`; folder keys `mlp1.*`.
- `language_model`: InternLM2 as `LlamaForCausalLM`; LIRA `llm`; folder keys `language_model.*`, LIRA `.pth`
  keys `llm.base_model.model.*` (embeddings, head, LoRA).
- `visual_encoder`: OMG-Seg (`OmgSegEncoder`), frozen, float32; LIRA `visual_encoder`; the `state_dict` of
  `omg_seg_convl.pth` under the prefix `visual_encoder.`.
- `projector`: SEFE projector (`SefeProjector`); LIRA `projector`; `.pth` keys `projector.*`, unchanged.
- `projector_text2vision`: `[SEG]` → OMG query (`TextToVisionProjector`); `.pth` keys `projector_text2vision.*`.

The key renames are in `models.lira.checkpoint` (`internvl`, `lira_pth`, `omg_seg`, `lira`).

Stage methods: `encode_images` (InternVL tiles + OMG input → per-image visual token sequences), `encode_local_crops`
(ILVC crops as one tile each), `build_inputs_embeds` (splice visual sequences at `IMAGE_TOKEN_INDEX` placeholders),
`seg_hidden_states_to_masks` (`[SEG]` hidden states → binary masks), and `forward` (the training losses).
Generation code drives `language_model` step by step on `inputs_embeds` with its KV cache.

**LoRA (stage 2).** `attach_lora` first packs each attention's q, k, v projections into one Linear `wqkv` whose
rows are in InternLM2's grouped order (`LiraPackedQkvAttention`), then injects peft LoRA into `wqkv`, `o_proj`,
`gate_proj`, `up_proj`, `down_proj` and `lm_head`: InternLM2's `wqkv`, `wo`, `w1`, `w3`, `w2` and `output`. One
LoRA pair on the packed `wqkv` is the original parametrisation (one A of rank r shared by q, k and v, one B over
the packed rows, one dropout mask); three independent q/k/v adapters would not be (their A matrices drift apart,
and the sum cannot be written back as one rank-r pair). So the official `.pth` LoRA tensors load into the adapters
as they are and export back unchanged (`models.lira.checkpoint.lira.lira_pth_state_dict`). `merge_lora` folds the
adapters into the weights and restores the plain Llama attention for inference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from torch import Tensor, nn
from transformers import LlamaForCausalLM
from transformers.models.llama.modeling_llama import (
    ALL_ATTENTION_FUNCTIONS,
    LlamaAttention,
    apply_rotary_pos_emb,
    eager_attention_forward,
)

from models.lira.checkpoint.internvl import pack_internlm2_wqkv, split_internlm2_wqkv
from models.lira.config import LiraConfig
from models.lira.losses import projection_loss, seg_mask_losses
from models.lira.processor import postprocess_mask_logits
from models.lira.projector import SefeProjector, TextToVisionProjector, pretrain_query_reconstruction
from models.lira.segmentation import (
    MaskDecoderOutputs,
    OmgSegEncoder,
    OmgSegMemory,
    OmgSegOutputs,
)
from models.lira.tokenizer import IMAGE_TOKEN_INDEX
from models.lira.vision import build_mlp1, build_vision_model, extract_internvl_features

IGNORE_INDEX = -100
"""Label of positions without a target (prompt, visual tokens, padding)."""

LORA_MODULE_NAMES: dict[str, str] = {
    "wqkv": "wqkv",
    "wo": "o_proj",
    "w1": "gate_proj",
    "w3": "up_proj",
    "w2": "down_proj",
    "output": "lm_head",
}
"""Original InternLM2 LoRA target (`LiraLoraConfig.target_modules`) → module name in `language_model`."""

# ---------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------


@dataclass
class LiraVisualEncoding:
    """The visual inputs of a batch of images (one row of the batch per image).

    Attributes:
        sequences: per image, the `(L_b, H)` sequence that replaces the row's first `IMAGE_TOKEN_INDEX`:
            `[InternVL tokens][sep][pixel tokens][sep][valid query tokens]` (fine-tune) or
            `[sep][pixel tokens][sep][valid query tokens]` (pretrain).
        omg: the OMG-Seg pass; `omg.memory` is what `[SEG]` decoding of these images attends to.
        internvl_tokens: per image `(tokens_per_tile·T_b, H)`, or None in the pretrain layout.
    """

    sequences: list[Tensor]
    omg: OmgSegOutputs
    internvl_tokens: list[Tensor] | None


@dataclass
class LiraSplicedInputs:
    """Language-model inputs after the visual sequences are spliced in (`build_inputs_embeds`).

    Attributes:
        inputs_embeds: `(B, L, H)`; padding rows are zeros.
        attention_mask: `(B, L)` int64, 1 on real positions.
        position_ids: `(B, L)`, counting from 0 at each row's first real position (0 on padding).
        labels: `(B, L)` with `IGNORE_INDEX` on visual tokens and padding, or None when no labels were given.
        lengths: real length of each row.
    """

    inputs_embeds: Tensor
    attention_mask: Tensor
    position_ids: Tensor
    labels: Tensor | None
    lengths: list[int]


@dataclass
class LiraSegLossStatus:
    """How the `[SEG]` mask losses of a batch were treated.

    The original multiplies the batch's mask losses by 0 unless it holds exactly two `[SEG]` tokens per
    ground-truth mask (each phrase is `[SEG]<image_id><image> <p> … </p> [SEG]`, lira-model.md §7.1), e.g. after
    `max_length` truncation. `forward` does the same and reports it here, so that training code can instead skip
    the batch and count it.

    Attributes:
        num_seg_tokens: supervised `[SEG]` positions (`labels == [SEG]`) in the batch.
        num_masks: ground-truth masks in the batch.
        applied: the mask losses were computed (not zeroed).
        reason: why not, or None.
    """

    num_seg_tokens: int
    num_masks: int
    applied: bool
    reason: str | None

    @property
    def mismatched(self) -> bool:
        """The batch breaks the original's "2 × masks" rule (the condition to skip and count)."""
        return self.num_seg_tokens != 2 * self.num_masks


@dataclass
class LiraTrainingOutput:
    """Losses of `LiraModel.forward` (`LIRA.compute_loss`, lira-model.md §8); `loss` is their sum.

    Attributes:
        loss: `lm_loss + dice_loss + mask_loss + projection_loss`.
        lm_loss: next-token cross-entropy over the supervised positions.
        dice_loss: 0.1 × Σ over decoder outputs of 5 × naive Dice (0 unless `seg_status.applied`).
        mask_loss: 0.4 × Σ over decoder outputs of 5 × sigmoid BCE (0 unless `seg_status.applied`).
        projection_loss: stage 1 only, 10 × MSE of the OMG query round trip; 0 otherwise.
        seg_status: `[SEG]`/mask counts and whether the mask losses were applied.
        logits: `(B, L, vocab)` language-model logits over the spliced sequence.
    """

    loss: Tensor
    lm_loss: Tensor
    dice_loss: Tensor
    mask_loss: Tensor
    projection_loss: Tensor
    seg_status: LiraSegLossStatus
    logits: Tensor


# ---------------------------------------------------------------------------
# Free functions
# ---------------------------------------------------------------------------


def prepare_gt_masks(masks: Tensor, size: int) -> Tensor:
    """Ground-truth masks as the training losses read them (`expand2square_mask` + nearest resize, §8).

    The masks are zero-padded to a square, centred as the OMG image is (⌊pad/2⌋ before, the rest after), then
    resized to `size`×`size` with nearest-neighbour interpolation (`F.interpolate(mode="nearest")`, as the
    original datasets). Masks that are already `size`×`size` come back unchanged.

    Args:
        masks: `(n, height, width)`, bool or integer 0/1.

    Returns:
        `(n, size, size)` uint8.
    """
    if masks.dim() != 3:
        raise ValueError(f"prepare_gt_masks: expected (n, height, width) masks, got shape {tuple(masks.shape)}")
    masks = masks.to(torch.uint8)
    _, height, width = masks.shape
    if height != width:
        pad = abs(height - width)
        before, after = pad // 2, pad - pad // 2
        # F.pad order: (left, right, top, bottom)
        masks = F.pad(masks, (before, after, 0, 0) if height > width else (0, 0, before, after))
    if masks.shape[-1] != size:
        masks = F.interpolate(masks.unsqueeze(0), size=(size, size), mode="nearest").squeeze(0)
    return masks


def splice_visual_sequences(
    embed_tokens: Callable[[Tensor], Tensor],
    input_ids: Tensor,
    visual_sequences: Sequence[Sequence[Tensor]],
    *,
    labels: Tensor | None = None,
    attention_mask: Tensor | None = None,
    padding_side: Literal["right", "left"] = "right",
) -> LiraSplicedInputs:
    """Replace each `IMAGE_TOKEN_INDEX` with the next visual sequence of its row (xtuner's
    `prepare_inputs_labels_for_multimodal`, lira-model.md §3.3).

    Padding (`attention_mask == 0`) is dropped first; visual positions get `IGNORE_INDEX` labels; rows are padded
    again on `padding_side` with zero embeddings (right, as in training; left suits batched generation).

    Args:
        embed_tokens: the language model's input embedding.
        input_ids: `(B, L)` with `IMAGE_TOKEN_INDEX` placeholders.
        visual_sequences: per row, the `(L_i, H)` sequences for its placeholders, in order (for LIRA: the image's
            SEFE sequence, then the ILVC crop tokens of the answer).
        labels: `(B, L)` input-aligned targets, or None.
        attention_mask: `(B, L)`, or None when nothing is padded.

    Raises:
        ValueError: a row whose placeholder count differs from its number of visual sequences.
    """
    batch = input_ids.shape[0]
    if len(visual_sequences) != batch:
        raise ValueError(f"splice: {batch} rows but visual sequences for {len(visual_sequences)} rows")
    if padding_side not in ("right", "left"):
        raise ValueError(f"splice: padding_side must be 'right' or 'left', got {padding_side!r}")
    keep = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    placeholder = input_ids == IMAGE_TOKEN_INDEX
    text_embeds = embed_tokens(input_ids.masked_fill(placeholder, 0))
    rows_embeds: list[Tensor] = []
    rows_labels: list[Tensor] = []
    for b in range(batch):
        ids, embeds = input_ids[b][keep[b]], text_embeds[b][keep[b]]
        row_labels = labels[b][keep[b]] if labels is not None else None
        positions = (ids == IMAGE_TOKEN_INDEX).nonzero().flatten().tolist()
        sequences = visual_sequences[b]
        if len(positions) != len(sequences):
            raise ValueError(
                f"splice: row {b} has {len(positions)} image placeholders ({IMAGE_TOKEN_INDEX}) but "
                f"{len(sequences)} visual sequences"
            )
        parts, part_labels, start = [], [], 0
        for position, sequence in zip([*positions, len(ids)], [*sequences, None], strict=True):
            parts.append(embeds[start:position])
            if row_labels is not None:
                part_labels.append(row_labels[start:position])
            if sequence is not None:
                parts.append(sequence.to(embeds.dtype))
                if row_labels is not None:
                    part_labels.append(row_labels.new_full((sequence.shape[0],), IGNORE_INDEX))
            start = position + 1
        rows_embeds.append(torch.cat(parts))
        if row_labels is not None:
            rows_labels.append(torch.cat(part_labels))

    lengths = [row.shape[0] for row in rows_embeds]
    width = max(lengths)
    hidden = text_embeds.shape[-1]
    inputs_embeds = text_embeds.new_zeros(batch, width, hidden)
    mask = torch.zeros(batch, width, dtype=torch.long, device=input_ids.device)
    position_ids = torch.zeros(batch, width, dtype=torch.long, device=input_ids.device)
    spliced_labels = None if labels is None else labels.new_full((batch, width), IGNORE_INDEX)
    for b, length in enumerate(lengths):
        span = slice(0, length) if padding_side == "right" else slice(width - length, width)
        inputs_embeds[b, span] = rows_embeds[b]
        mask[b, span] = 1
        position_ids[b, span] = torch.arange(length, device=input_ids.device)
        if spliced_labels is not None:
            spliced_labels[b, span] = rows_labels[b]
    return LiraSplicedInputs(inputs_embeds, mask, position_ids, spliced_labels, lengths)


# ---------------------------------------------------------------------------
# Attention with InternLM2's packed wqkv (for LoRA training)
# ---------------------------------------------------------------------------


class LiraPackedQkvAttention(LlamaAttention):
    """Llama attention whose q, k and v projections are one Linear `wqkv` in InternLM2's grouped row order.

    Per KV head g the rows hold its G query heads, then key head g, then value head g (`split_internlm2_wqkv`).
    Everything after the projection is `LlamaAttention` unchanged. Used while LoRA is attached, so that one LoRA
    pair covers q, k and v exactly as LIRA's LoRA on `attention.wqkv` does.
    """

    def __init__(self, config: object, layer_idx: int) -> None:
        super().__init__(config, layer_idx)  # type: ignore[arg-type]
        rows = self.q_proj.out_features + self.k_proj.out_features + self.v_proj.out_features
        bias = self.q_proj.bias is not None
        del self.q_proj, self.k_proj, self.v_proj
        self.wqkv = nn.Linear(self.o_proj.out_features, rows, bias=bias)
        self.num_heads = config.num_attention_heads  # type: ignore[attr-defined]
        self.num_kv_heads = config.num_key_value_heads  # type: ignore[attr-defined]

    @classmethod
    def from_llama(cls, attention: LlamaAttention) -> LiraPackedQkvAttention:
        """Pack an attention's q/k/v weights into `wqkv` (an exact copy); `o_proj` is shared, not copied."""
        if attention.q_proj.bias is not None:
            raise ValueError("LiraPackedQkvAttention: attention biases are not supported (InternLM2 has none)")
        with torch.device("meta"):
            packed = cls(attention.config, attention.layer_idx)
        config = attention.config
        weight = pack_internlm2_wqkv(
            attention.q_proj.weight.detach(),
            attention.k_proj.weight.detach(),
            attention.v_proj.weight.detach(),
            config.num_attention_heads,
            config.num_key_value_heads,
        )
        packed.wqkv.weight = nn.Parameter(weight, requires_grad=attention.q_proj.weight.requires_grad)
        packed.o_proj = attention.o_proj
        return packed.train(attention.training)

    def to_llama(self) -> LlamaAttention:
        """The plain `LlamaAttention` with q/k/v split from `wqkv` (which must not carry LoRA)."""
        if not isinstance(self.wqkv, nn.Linear):
            raise RuntimeError("LiraPackedQkvAttention.to_llama: merge the LoRA adapters of wqkv first")
        with torch.device("meta"):
            attention = LlamaAttention(self.config, self.layer_idx)
        q, k, v = split_internlm2_wqkv(self.wqkv.weight.detach(), self.num_heads, self.num_kv_heads)
        requires_grad = self.wqkv.weight.requires_grad
        for name, weight in (("q_proj", q), ("k_proj", k), ("v_proj", v)):
            getattr(attention, name).weight = nn.Parameter(weight, requires_grad=requires_grad)
        attention.o_proj = self.o_proj
        return attention.train(self.training)

    def forward(  # type: ignore[override]
        self,
        hidden_states: Tensor,
        position_embeddings: tuple[Tensor, Tensor] | None = None,
        attention_mask: Tensor | None = None,
        cache: object | None = None,
        **kwargs: object,
    ) -> tuple[Tensor, Tensor | None]:
        cache = kwargs.pop("past_key_values", cache)
        input_shape = hidden_states.shape[:-1]
        group = self.num_heads // self.num_kv_heads
        qkv = self.wqkv(hidden_states).view(*input_shape, self.num_kv_heads, group + 2, self.head_dim)
        query_states = qkv[..., :group, :].reshape(*input_shape, self.num_heads, self.head_dim).transpose(1, 2)
        key_states = qkv[..., group, :].transpose(1, 2)
        value_states = qkv[..., group + 1, :].transpose(1, 2)

        cos, sin = position_embeddings  # type: ignore[misc]
        query_states, key_states = apply_rotary_pos_emb(query_states, key_states, cos, sin)
        if cache is not None:
            key_states, value_states = cache.update(  # type: ignore[attr-defined]
                key_states, value_states, self.layer_idx, kwargs=kwargs
            )
        attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query_states,
            key_states,
            value_states,
            attention_mask,
            dropout=0.0 if not self.training else self.attention_dropout,
            scaling=self.scaling,
            **kwargs,
        )
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()
        return self.o_proj(attn_output), attn_weights


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------


class LiraModel(nn.Module):
    """LIRA: InternVL2 (InternViT, `mlp1`, InternLM2) + OMG-Seg + SEFE projector + `[SEG]` projector.

    Built from the config only, with PyTorch's default initialisation; weights come from
    `models.lira.checkpoint.lira` (`load_lira`, `load_saved_lira`, `build_lira_tiny`). OMG-Seg is frozen and
    should stay float32 (its outputs are cast to the projector's dtype, as the original does).
    """

    def __init__(self, config: LiraConfig) -> None:
        super().__init__()
        self.config = config
        vl = config.vision_language
        self.vision_model = build_vision_model(vl)
        self.mlp1 = build_mlp1(vl)
        self.language_model = LlamaForCausalLM(vl.text.to_hf(vl.attn_implementation))
        self.visual_encoder = OmgSegEncoder(config.omg_seg)
        self.projector = SefeProjector(config.projector)
        self.projector_text2vision = TextToVisionProjector(config.text_to_vision)

    # --- properties -------------------------------------------------------------------------------------------

    @property
    def pretrain_layout(self) -> bool:
        """Stage 1: the visual sequence has no InternVL tokens and no cross-attention (`onlyomg_pretrain`)."""
        return self.config.stage == "pretrain"

    @property
    def lora_attached(self) -> bool:
        return any(isinstance(module, LoraLayer) for module in self.language_model.modules())

    @property
    def projector_dtype(self) -> torch.dtype:
        return self.projector.model.query_proj.weight.dtype

    # --- vision ---------------------------------------------------------------------------------------------------

    def _internvl_grad(self) -> bool:
        trainable = any(p.requires_grad for p in (*self.vision_model.parameters(), *self.mlp1.parameters()))
        return torch.is_grad_enabled() and trainable

    def internvl_features(self, pixel_values: Tensor) -> Tensor:
        """`(tiles, 3, S, S)` ImageNet-normalised tiles → `(tiles, tokens_per_tile, H)` (`LIRA.extract_feature`).

        Runs without autograd while InternViT and `mlp1` are frozen (as in every LIRA stage).
        """
        with torch.set_grad_enabled(self._internvl_grad()):
            return extract_internvl_features(self.vision_model, self.mlp1, pixel_values, self.config.vision_language)

    def encode_local_crops(self, pixel_values: Tensor) -> list[Tensor]:
        """ILVC: each `(3, S, S)` crop (already stretched to one tile) → its `(tokens_per_tile, H)` tokens."""
        if pixel_values.shape[0] == 0:
            return []
        return list(self.internvl_features(pixel_values).unbind(0))

    def encode_images(
        self, seg_pixel_values: Tensor, internvl_pixel_values: Sequence[Tensor] | None = None
    ) -> LiraVisualEncoding:
        """Encode a batch of images into their visual token sequences (lira-model.md §2-3).

        Args:
            seg_pixel_values: `(B, 3, S, S)` CLIP-normalised OMG input (padded to square, S = `seg_image_size`).
            internvl_pixel_values: per image, its `(T_b, 3, 448, 448)` tiles (thumbnail last). Required in the
                fine-tune layout; ignored (may be None) in the pretrain layout.
        """
        batch = seg_pixel_values.shape[0]
        size = self.config.seg_image_size
        if seg_pixel_values.dim() != 4 or tuple(seg_pixel_values.shape[-2:]) != (size, size):
            raise ValueError(
                f"encode_images: seg_pixel_values must be (B, 3, {size}, {size}), got {tuple(seg_pixel_values.shape)}"
            )
        internvl_tokens = None
        if not self.pretrain_layout:
            if internvl_pixel_values is None or len(internvl_pixel_values) != batch:
                count = None if internvl_pixel_values is None else len(internvl_pixel_values)
                raise ValueError(f"encode_images: {batch} images need {batch} InternVL tile stacks, got {count}")
            counts = [tiles.shape[0] for tiles in internvl_pixel_values]
            features = self.internvl_features(torch.cat(list(internvl_pixel_values)))
            internvl_tokens = [f.reshape(-1, f.shape[-1]) for f in features.split(counts)]
        omg = self.visual_encoder.encode(seg_pixel_values)
        dtype = self.projector_dtype
        sequences = self.projector(
            omg.clip_feature.to(dtype),
            omg.query_pos_feat.to(dtype),
            omg.attn_mask,
            None if internvl_tokens is None else [t.to(dtype) for t in internvl_tokens],
            pretrain_layout=self.pretrain_layout,
        )
        return LiraVisualEncoding(sequences=sequences, omg=omg, internvl_tokens=internvl_tokens)

    # --- language model inputs ------------------------------------------------------------------------------------

    def embed_tokens(self, input_ids: Tensor) -> Tensor:
        """`(B, L)` token ids → `(B, L, H)` input embeddings."""
        return self.language_model.get_input_embeddings()(input_ids)

    def build_inputs_embeds(
        self,
        input_ids: Tensor,
        visual_sequences: Sequence[Sequence[Tensor]],
        *,
        labels: Tensor | None = None,
        attention_mask: Tensor | None = None,
        padding_side: Literal["right", "left"] = "right",
    ) -> LiraSplicedInputs:
        """Embed a prompt batch with the visual sequences at its `IMAGE_TOKEN_INDEX` placeholders
        (see `splice_visual_sequences`)."""
        return splice_visual_sequences(
            self.embed_tokens,
            input_ids,
            visual_sequences,
            labels=labels,
            attention_mask=attention_mask,
            padding_side=padding_side,
        )

    # --- [SEG] → mask ---------------------------------------------------------------------------------------------

    def decode_seg_hidden_states(
        self,
        hidden_states: Tensor,
        memory: OmgSegOutputs | OmgSegMemory,
        batch_idxs: Tensor,
        *,
        keep_intermediate: bool = False,
    ) -> MaskDecoderOutputs:
        """`[SEG]` last-layer hidden states `(N, H)` → `projector_text2vision` → OMG decoder (`forward_llm_seg`).

        Args:
            memory: the OMG pass (or its memory) of the images; `batch_idxs` `(N,)` picks each state's image.
            keep_intermediate: keep all decoder outputs (training supervises all of them).
        """
        if isinstance(memory, OmgSegOutputs):
            memory = memory.memory
        queries = self.projector_text2vision(hidden_states.to(self.projector_dtype))
        return self.visual_encoder.decode_seg_queries(
            queries, memory, batch_idxs.to(queries.device), keep_intermediate=keep_intermediate
        )

    def seg_hidden_states_to_masks(
        self,
        hidden_states: Tensor,
        memory: OmgSegOutputs | OmgSegMemory,
        batch_idxs: Tensor,
        image_sizes: Sequence[tuple[int, int]],
    ) -> list[Tensor]:
        """`[SEG]` hidden states → binary masks over the original images (lira-model.md §6).

        The last decoder output is upsampled to the padded square of the image, the padding is cropped, and
        `sigmoid > 0.5` is taken (`models.lira.processor.postprocess_mask_logits`).

        Args:
            hidden_states: `(N, H)` last-layer states at the positions whose input token is `[SEG]`.
            memory: the OMG pass of the images.
            batch_idxs: `(N,)` image of each state.
            image_sizes: per image, its original `(width, height)`.

        Returns:
            Per state, a `(height, width)` bool mask of its image.
        """
        decoded = self.decode_seg_hidden_states(hidden_states, memory, batch_idxs)
        logits = decoded.predictions[-1].mask_logits.float()
        masks = []
        for i, image in enumerate(batch_idxs.tolist()):
            width, height = image_sizes[int(image)]
            masks.append(postprocess_mask_logits(logits[i : i + 1], height, width)[0])
        return masks

    # --- training forward -----------------------------------------------------------------------------------------

    def forward(
        self,
        input_ids: Tensor,
        labels: Tensor,
        seg_pixel_values: Tensor,
        internvl_pixel_values: Sequence[Tensor] | None = None,
        attention_mask: Tensor | None = None,
        local_crop_pixel_values: Sequence[Tensor] | None = None,
        gt_masks: Sequence[Tensor] | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> LiraTrainingOutput:
        """LIRA's training forward and losses (`LIRA.forward` + `compute_loss` + `compute_seg_loss`).

        Args:
            input_ids: `(B, L)`, right-padded, one `IMAGE_TOKEN_INDEX` for the image, then one per ILVC crop.
            labels: `(B, L)` input-aligned targets (`IGNORE_INDEX` where unsupervised).
            seg_pixel_values: `(B, 3, S, S)` OMG input of each row's image.
            internvl_pixel_values: per row, `(T_b, 3, 448, 448)` tiles (fine-tune stage).
            attention_mask: `(B, L)`, 1 on real tokens.
            local_crop_pixel_values: per row, `(n_b, 3, 448, 448)` ILVC crops (one tile each) for the row's later
                placeholders, in order; None when there are none.
            gt_masks: per row, `(m_b, h, w)` masks, in the order of the row's phrases; padded to square and
                resized to S×S here (`prepare_gt_masks`). Each mask pairs with two `[SEG]` tokens.
            generator: random source of the loss point sampling.
        """
        batch = input_ids.shape[0]
        encoding = self.encode_images(seg_pixel_values, internvl_pixel_values)
        crops: list[list[Tensor]] = [[] for _ in range(batch)]
        if local_crop_pixel_values is not None:
            if len(local_crop_pixel_values) != batch:
                raise ValueError(f"forward: {batch} rows but local crops for {len(local_crop_pixel_values)}")
            crops = [self.encode_local_crops(row) for row in local_crop_pixel_values]
        spliced = self.build_inputs_embeds(
            input_ids,
            [[sequence, *crops[b]] for b, sequence in enumerate(encoding.sequences)],
            labels=labels,
            attention_mask=attention_mask,
        )
        outputs = self.language_model(
            inputs_embeds=spliced.inputs_embeds,
            attention_mask=spliced.attention_mask,
            position_ids=spliced.position_ids,
            labels=spliced.labels,
            output_hidden_states=True,
            use_cache=False,
        )
        lm_loss = outputs.loss
        zero = lm_loss * 0
        assert spliced.labels is not None
        dice_loss, mask_loss, status = self._seg_losses(
            outputs.hidden_states[-1], spliced.labels, encoding.omg, gt_masks, zero, generator
        )
        proj_loss = zero
        if self.pretrain_layout:
            dtype = self.projector_dtype
            reconstructed, target = pretrain_query_reconstruction(
                self.projector,
                self.projector_text2vision,
                encoding.omg.query_pos_feat.to(dtype),
                encoding.omg.attn_mask,
            )
            proj_loss = projection_loss(reconstructed, target, self.config.mask_loss.projection_weight)
        return LiraTrainingOutput(
            loss=lm_loss + dice_loss + mask_loss + proj_loss,
            lm_loss=lm_loss,
            dice_loss=dice_loss,
            mask_loss=mask_loss,
            projection_loss=proj_loss,
            seg_status=status,
            logits=outputs.logits,
        )

    def _seg_losses(
        self,
        hidden_states: Tensor,
        labels: Tensor,
        omg: OmgSegOutputs,
        gt_masks: Sequence[Tensor] | None,
        zero: Tensor,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, Tensor, LiraSegLossStatus]:
        seg_positions = labels == self.config.added_tokens.seg
        num_seg = int(seg_positions.sum())
        size = self.config.seg_image_size
        rows = [] if gt_masks is None else [m for m in gt_masks if m.shape[0] > 0]
        masks = torch.cat([prepare_gt_masks(m, size) for m in rows]) if rows else None
        num_masks = 0 if masks is None else masks.shape[0]

        if self.pretrain_layout:  # `compute_seg_loss` returns (0, 0) when `add_seg_pretrain`
            return zero, zero, LiraSegLossStatus(num_seg, num_masks, False, "pretrain stage has no mask losses")
        if masks is None or num_seg != 2 * num_masks:
            reason = (
                "no ground-truth masks in the batch"
                if masks is None
                else f"{num_seg} [SEG] tokens for {num_masks} masks (expected {2 * num_masks})"
            )
            # As the original: decode one dummy query and multiply by 0, so every trainable part stays in the graph.
            dummy = self.decode_seg_hidden_states(
                hidden_states[0, :1], omg, torch.zeros(1, dtype=torch.long), keep_intermediate=True
            )
            nothing = zero + sum(p.mask_logits.sum() for p in dummy.predictions) * 0.0
            return nothing, nothing, LiraSegLossStatus(num_seg, num_masks, False, reason)

        batch_idxs = seg_positions.nonzero()[:, 0]
        decoded = self.decode_seg_hidden_states(hidden_states[seg_positions], omg, batch_idxs, keep_intermediate=True)
        targets = masks.to(hidden_states.device).repeat_interleave(2, dim=0)
        losses = seg_mask_losses(
            [p.mask_logits for p in decoded.predictions], targets, self.config.mask_loss, generator=generator
        )
        return losses.dice, losses.mask, LiraSegLossStatus(num_seg, num_masks, True, None)

    # --- training setup -------------------------------------------------------------------------------------------

    def attach_lora(self) -> None:
        """Inject fresh peft LoRA adapters (rank, alpha, dropout of `config.lora`) into the language model.

        `wqkv` targets pack each attention first (`LiraPackedQkvAttention`). peft initialises A (Kaiming uniform)
        and B (zeros), so the model's output is unchanged until training.
        """
        if self.lora_attached:
            raise RuntimeError("LiraModel.attach_lora: LoRA is already attached")
        lora = self.config.lora
        if "wqkv" in lora.target_modules:
            for layer in self.language_model.model.layers:
                if not isinstance(layer.self_attn, LiraPackedQkvAttention):
                    layer.self_attn = LiraPackedQkvAttention.from_llama(layer.self_attn)
        peft_config = LoraConfig(
            r=lora.rank,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            bias="none",
            target_modules=[LORA_MODULE_NAMES[name] for name in lora.target_modules],
        )
        inject_adapter_in_model(peft_config, self.language_model)
        self.language_model.train(self.training)  # new adapter modules start in training mode

    def merge_lora(self) -> None:
        """Fold every adapter into its weight, `W + (alpha / r) · B @ A` computed in float32 (the same rule as
        loading a LIRA `.pth` with merged LoRA), drop the adapters and restore the plain Llama attention."""
        scaling = self.config.lora.scaling
        for name, module in list(self.language_model.named_modules()):
            if not isinstance(module, LoraLayer):
                continue
            base = module.get_base_layer()
            lora_a, lora_b = module.lora_A["default"].weight, module.lora_B["default"].weight
            with torch.no_grad():
                merged = base.weight.float() + scaling * (lora_b.float() @ lora_a.float())
            base.weight = nn.Parameter(merged.to(base.weight.dtype), requires_grad=base.weight.requires_grad)
            parent_name, _, child = name.rpartition(".")
            setattr(self.language_model.get_submodule(parent_name), child, base)
        for layer in self.language_model.model.layers:
            if isinstance(layer.self_attn, LiraPackedQkvAttention):
                layer.self_attn = layer.self_attn.to_llama()
        if hasattr(self.language_model, "peft_config"):  # set by peft's injection
            del self.language_model.peft_config

    def prepare_for_training(self) -> list[str]:
        """Set trainable and frozen parameters for `config.stage` (lira-model.md §9); returns the trainable names.

        - pretrain: `projector.*` and `projector_text2vision.*` only.
        - finetune: attaches LoRA if needed; trains the LoRA adapters, the full input embeddings and LM-head base
          weight, `projector.*` (with its cross-attention) and `projector_text2vision.*`.
        InternViT, `mlp1`, OMG-Seg and the base LLM weights stay frozen in both.
        """
        if self.config.stage == "finetune" and not self.lora_attached:
            self.attach_lora()
        self.requires_grad_(False)
        self.projector.requires_grad_(True)
        self.projector_text2vision.requires_grad_(True)
        if self.config.stage == "finetune":
            for name, parameter in self.language_model.named_parameters():
                if "lora_" in name:
                    parameter.requires_grad_(True)
            self.language_model.get_input_embeddings().weight.requires_grad_(True)
            head = self.language_model.lm_head
            (head.get_base_layer() if isinstance(head, LoraLayer) else head).weight.requires_grad_(True)
        return self.trainable_parameter_names()

    def trainable_parameter_names(self) -> list[str]:
        return [name for name, parameter in self.named_parameters() if parameter.requires_grad]


__all__ = [
    "IGNORE_INDEX",
    "IMAGE_TOKEN_INDEX",
    "LORA_MODULE_NAMES",
    "LiraModel",
    "LiraPackedQkvAttention",
    "LiraSegLossStatus",
    "LiraSplicedInputs",
    "LiraTrainingOutput",
    "LiraVisualEncoding",
    "prepare_gt_masks",
    "splice_visual_sequences",
]
