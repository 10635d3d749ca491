"""A judge request that got no answer (outage, 401, 404, timeout): not a score, never cached."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Failed:
    """Why a request got no answer, e.g. ``"404 model_not_found (NotFoundError)"`` (never the key)."""

    reason: str


def describe_error(err: BaseException) -> str:
    """A short, key-free description of an SDK error: status, error code and exception type."""
    parts = []
    status = getattr(err, "status_code", None)
    if status is not None:
        parts.append(str(status))
    code = getattr(err, "code", None)
    body = getattr(err, "body", None)
    if code is None and isinstance(body, dict):
        inner = body.get("error", body)
        code = inner.get("code") or inner.get("type") if isinstance(inner, dict) else None
    if isinstance(code, str) and code.replace("_", "").isalnum():
        parts.append(code)
    parts.append(f"({type(err).__name__})")
    return " ".join(parts)


def summarize_failures(failures: list[Failed], total: int, what: str = "judge requests") -> str:
    """One line: ``"12 of 200 judge requests failed: 404 model_not_found (NotFoundError) x12"``."""
    counts = Counter(f.reason for f in failures)
    reasons = "; ".join(f"{reason} x{n}" if n > 1 else reason for reason, n in counts.most_common())
    return f"{len(failures)} of {total} {what} failed: {reasons}"
