"""The `interlock` logger. Records carry `interlock_plugin` / `interlock_hook` extras.

As a library, interlock adds only a `NullHandler`: the host decides where logs go.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("interlock")
logger.addHandler(logging.NullHandler())
