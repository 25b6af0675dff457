"""Deterministic stand-ins for a model tokenizer."""

from __future__ import annotations

import re

# Each token is a run of whitespace followed by a run of non-whitespace, so the
# deltas concatenate back to the exact reply; trailing whitespace is its own token.
_TOKEN = re.compile(r"\s*\S+|\s+")

_FILLER_WORDS = (
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
)


def tokenize(text: str) -> list[str]:
    """Split ``text`` into word-ish tokens whose concatenation equals ``text``."""
    return _TOKEN.findall(text)


def filler_tokens(count: int) -> list[str]:
    """Return ``count`` tokens of deterministic filler (``"lorem ipsum dolor ..."``).

    ``tokenize("".join(filler_tokens(n)))`` gives back the same ``n`` tokens.
    """
    return [("" if i == 0 else " ") + _FILLER_WORDS[i % len(_FILLER_WORDS)] for i in range(count)]


def estimate_tokens(texts: list[str]) -> int:
    """Estimate prompt tokens as whitespace-separated words across ``texts``, at least 1."""
    return max(1, sum(len(text.split()) for text in texts))
