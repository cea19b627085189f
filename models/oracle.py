"""The oracle adapter: answers every request with its ground truth, so every task must score perfectly."""

from __future__ import annotations

from collections.abc import Sequence

from harness.model import ModelAdapter
from harness.types import REQUEST_KINDS, Prediction, Request


class OracleAdapter(ModelAdapter):
    """Returns each request's reference prediction (a self-check of tasks, metrics and the runner)."""

    capabilities = frozenset({"text", "masks", "probes", "reference"})
    request_kinds = frozenset(REQUEST_KINDS)
    preferred_batch_size = 256

    def __init__(self) -> None:
        super().__init__()

    def predict(self, requests: Sequence[Request]) -> list[Prediction]:
        missing = [request.sample_id for request in requests if request.reference is None]
        if missing:
            raise ValueError(f"requests without a reference prediction: {missing[:5]}")
        return [request.reference for request in requests]  # type: ignore[misc]
