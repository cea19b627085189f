#!/usr/bin/env python
"""attreval command line: ``python run_eval.py --model NAME --tasks T1,T2 [...]`` (see ``--help``)."""

import sys

from harness.cli import main

if __name__ == "__main__":
    sys.exit(main())
