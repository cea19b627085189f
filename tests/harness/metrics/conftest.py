"""Metric tests: NLTK reads CHAIR's data from NLTK_DATA; default it to the bundled ../shared/nltk_data."""

import os
import sys
from pathlib import Path

BUNDLED_NLTK_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "nltk_data"

if "NLTK_DATA" not in os.environ and BUNDLED_NLTK_DATA.is_dir():
    os.environ["NLTK_DATA"] = str(BUNDLED_NLTK_DATA)
    if "nltk" in sys.modules:  # imported before this conftest: its search path was fixed at import
        sys.modules["nltk"].data.path.insert(0, str(BUNDLED_NLTK_DATA))
