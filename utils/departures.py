"""Departures from the papers' method, said the same way everywhere.

Where a profile cannot do what a paper does (a weak local judge, a missing published SAE), a section does
something else and says so in one line that starts with `PREFIX`; each section's introduction lists the
departures its offline run makes. `departure` formats the line; nothing else prints the prefix.
"""

from __future__ import annotations

PREFIX = "Departure from the method:"


def departure(text: str) -> str:
    """The one-line note a cell prints for a departure from the method.

    Args:
        text: what is done instead, and why (a sentence; no prefix).

    Returns:
        ``"Departure from the method: <text>"``.

    Raises:
        ValueError: for an empty text, or one that already carries the prefix.
    """
    text = text.strip()
    if not text or text.lower().startswith(PREFIX.lower()) or text.upper().startswith("DEPARTURE"):
        raise ValueError(f"departure() takes what is done instead, without the prefix; got {text!r}")
    return f"{PREFIX} {text}"
