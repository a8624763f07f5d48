#!/usr/bin/env python
"""Check that this machine has what the course needs: prints [OK]/[FAIL] per requirement."""

import sys

from minilib.envcheck import check_environment

if __name__ == "__main__":
    sys.exit(0 if check_environment() else 1)
