"""Exercise checkers: `checks.check_<thing>(learner_fn)` prints a verdict and never raises.

Each chapter's checkers live in `chNN.py`; all are importable from `minilib.checks`.
"""

from .ch00 import *  # noqa: F401,F403
from .ch01 import *  # noqa: F401,F403
from .ch02 import *  # noqa: F401,F403
from .ch03 import *  # noqa: F401,F403
from .ch04 import *  # noqa: F401,F403
from .ch05 import *  # noqa: F401,F403
from .ch06 import *  # noqa: F401,F403
from .ch07 import *  # noqa: F401,F403
from .ch08 import *  # noqa: F401,F403
from .core import Verdict, check_call, check_function, compare, failed, not_implemented, passed  # noqa: F401
