"""Is a local process still the one we started? Used by the store (stale runs) and the job queue (workers).

A pid alone is not an identity: after the process ends (or the machine reboots) the number is handed to
another process. Where /proc exists, the process's start time (clock ticks since boot) is recorded with the
pid, and a pid whose start time differs is a different process.

This module imports neither torch nor streamlit.
"""
from __future__ import annotations

import os

__all__ = ["pid_alive", "start_ticks"]


def start_ticks(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (field 22 of /proc/<pid>/stat); None where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int | None, started: int | None = None) -> bool:
    """True while `pid` runs (a zombie does not count). With `started` (from `start_ticks` when the process was
    recorded), a process that now holds the same pid but started at another time does not count either."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass                                   # alive, owned by someone else
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return True                            # no /proc (macOS): kill(0) is all we know
    if fields[0] == "Z":                       # a zombie child of this process still answers kill(0)
        return False
    return started is None or int(fields[19]) == started
