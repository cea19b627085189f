"""LIRA's vision-language half: InternViT, `mlp1` and the InternLM2 language model as native Llama.

`LiraVisionLanguageModel` holds the three InternVL2 sub-modules that LIRA keeps (lira-model.md §2.1):

| attribute        | class                         | original LIRA attribute | original InternVL2 prefix |
|------------------|-------------------------------|-------------------------|---------------------------|
| `vision_model`   | `InternVLVisionModel`         | `vlm_enc`               | `vision_model.`           |
| `mlp1`           | `InternVLMultiModalProjector` | `vlm_mlp`               | `mlp1.`                   |
| `language_model` | `LlamaForCausalLM`            | `llm`                   | `language_model.`         |

The attribute names are the key prefixes of this module's state dict; the key renames from the original
layout are the tables in `models.lira.checkpoint.internvl`.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import LlamaForCausalLM
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.utils import ModelOutput

from models.lira.config import LiraVisionLanguageConfig
from models.lira.vision import build_mlp1, build_vision_model, extract_internvl_features


def merge_image_features(
    input_ids: torch.Tensor,
    inputs_embeds: torch.Tensor,
    image_features: torch.Tensor,
    image_token_id: int,
) -> torch.Tensor:
    """Put image features at the placeholder positions, in order (InternVL2's `<IMG_CONTEXT>` splice).

    Args:
        input_ids: `(batch, seq)`.
        inputs_embeds: `(batch, seq, hidden)`, the token embeddings of `input_ids`.
        image_features: `(images, tokens, hidden)` or `(tokens, hidden)`; flattened in order and written
            row-major over the placeholder positions of the batch.
        image_token_id: the placeholder id.

    Returns:
        A new `(batch, seq, hidden)` tensor.

    Raises:
        ValueError: if the number of placeholders differs from the number of feature vectors.
    """
    features = image_features.reshape(-1, image_features.shape[-1])
    placeholder = input_ids == image_token_id
    count = int(placeholder.sum())
    if count != features.shape[0]:
        raise ValueError(
            f"{count} image placeholder tokens (id {image_token_id}) but {features.shape[0]} image feature vectors"
        )
    merged = inputs_embeds.clone()
    merged[placeholder] = features.to(merged.dtype)
    return merged


class LiraVisionLanguageModel(nn.Module):
    """InternVL2's vision tower, `mlp1` and language model, as LIRA uses them.

    Stage methods (also used by the assembled LIRA model and the parity tests):
    `extract_internvl_features` (tiles → LLM-width image tokens), `embed_tokens`, `merge_image_features`
    (InternVL2-style `<IMG_CONTEXT>` prompts), `forward` and `generate`.
    """

    def __init__(self, config: LiraVisionLanguageConfig) -> None:
        super().__init__()
        self.config = config
        self.vision_model = build_vision_model(config)
        self.mlp1 = build_mlp1(config)
        self.language_model = LlamaForCausalLM(config.text.to_hf(config.attn_implementation))

    def extract_internvl_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`(tiles, C, S, S)` → `(tiles, tokens_per_tile, text_hidden)`; LIRA's `extract_feature`."""
        return extract_internvl_features(self.vision_model, self.mlp1, pixel_values, self.config)

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        """`(batch, seq)` ids → `(batch, seq, text_hidden)` input embeddings."""
        return self.language_model.get_input_embeddings()(input_ids)

    def merge_image_features(self, input_ids: torch.Tensor, image_features: torch.Tensor) -> torch.Tensor:
        """Embed `input_ids`; put `image_features` at the `<IMG_CONTEXT>` positions (`config.chat_tokens`)."""
        return merge_image_features(
            input_ids, self.embed_tokens(input_ids), image_features, self.config.chat_tokens.img_context
        )

    def _inputs_embeds(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None) -> torch.Tensor:
        if pixel_values is None:
            return self.embed_tokens(input_ids)
        return self.merge_image_features(input_ids, self.extract_internvl_features(pixel_values))

    def forward(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        *,
        output_hidden_states: bool = False,
    ) -> CausalLMOutputWithPast:
        """InternVL2-style forward: row i's `<IMG_CONTEXT>` tokens take the features of image i, in order.

        Args:
            input_ids: `(batch, seq)`.
            pixel_values: `(images, C, S, S)`, or None for text only.
            attention_mask: `(batch, seq)`, 1 for real tokens.
            labels: `(batch, seq)` input-aligned targets (-100 = ignored); gives the shifted CE `loss`.
            output_hidden_states: also return every layer's hidden states (the last one is after the
                final RMSNorm, which is what `[SEG]` decoding reads).
        """
        return self.language_model(
            inputs_embeds=self._inputs_embeds(input_ids, pixel_values),
            attention_mask=attention_mask,
            labels=labels,
            output_hidden_states=output_hidden_states,
            use_cache=False,
        )

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **generate_kwargs: object,
    ) -> torch.Tensor | ModelOutput:
        """transformers `generate` on the merged embeddings; returns only the new tokens (or the
        `generate` output object when `return_dict_in_generate=True`)."""
        return self.language_model.generate(
            inputs_embeds=self._inputs_embeds(input_ids, pixel_values),
            attention_mask=attention_mask,
            **generate_kwargs,
        )
