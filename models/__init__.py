"""Model adapters. Built-ins are declared here as lazy entries; plugins use the ``attreval.models`` group.

Replay formats of other code bases' outputs (`models.importers`) are declared here too.
"""

from __future__ import annotations

from harness.model import MODELS
from models.replay import REPLAY_FORMATS

MODELS.register_lazy("oracle", "models.oracle:OracleAdapter")
MODELS.register_lazy("constant", "models.constant:ConstantAdapter")
MODELS.register_lazy("replay", "models.replay:ReplayAdapter")
MODELS.register_lazy("lira-2b", "models.lira.adapter:LiraAdapter", preset="lira-2b")
MODELS.register_lazy("lira-8b", "models.lira.adapter:LiraAdapter", preset="lira-8b")
MODELS.register_lazy("lira-tiny", "models.lira.adapter:LiraTinyAdapter")

for _format in ("llava_pope", "glamm_gcg", "opera_chair", "lira_vqa", "refseg_jsonl"):
    REPLAY_FORMATS.register_lazy(_format, f"models.importers:load_{_format}")
