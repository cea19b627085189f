"""attreval's core: typed records, registries, the evaluation loop, the cache and the CLI."""

from __future__ import annotations

__version__ = "0.1.0"
