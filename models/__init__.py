"""Model adapters. Built-ins are declared here as lazy entries; plugins use the ``attreval.models`` group."""

from __future__ import annotations

from harness.model import MODELS

MODELS.register_lazy("oracle", "models.oracle:OracleAdapter")
MODELS.register_lazy("constant", "models.constant:ConstantAdapter")
MODELS.register_lazy("replay", "models.replay:ReplayAdapter")
