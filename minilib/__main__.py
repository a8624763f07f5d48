"""`python -m minilib run`: the end-to-end pipeline (see minilib/pipeline.py)."""

import sys

from minilib.pipeline import main

if __name__ == "__main__":
    sys.exit(main())
