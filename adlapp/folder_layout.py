"""Torch-free helpers for the messages that describe a data folder: capped name listings.

Shared by the loader (`adlapp.data.folders`) and the app's pre-launch check (`adlapp.study.check_dataset_folder`)
so both say the same thing the same way. It lives outside the `adlapp.data` package on purpose: importing any
module under `adlapp.data` runs that package's `__init__`, which imports torch, and the viewer paths that use
`adlapp.study` must stay torch-free.
"""
from __future__ import annotations

from collections.abc import Iterable

__all__ = ["LISTING_LIMIT", "capped_list"]

# Enough names to recognise a folder, few enough that pointing the loader at /etc (70 entries) or /tmp gives a
# one-line message instead of a wall of names.
LISTING_LIMIT = 5


def capped_list(names: Iterable[str], limit: int = LISTING_LIMIT, empty: str = "nothing") -> str:
    """'a, b, c' for a short list; 'a, b, c, d, e and 35 more' past `limit` names; `empty` for none.

    The names are listed in the order given (callers sort them), so the message is stable.
    """
    names = list(names)
    if not names:
        return empty
    limit = max(1, limit)
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"
