"""How much memory this machine has free now: main memory (CPU) or the GPU's."""

from __future__ import annotations

import os


def available() -> int:
    """Bytes of main memory available now (a large number where the system does not say)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 1 << 62
