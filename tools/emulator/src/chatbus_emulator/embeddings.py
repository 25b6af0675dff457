"""``POST /v1/embeddings`` in OpenAI's format, with deterministic vectors.

A text's vector is its hashed bag of words (each lower-cased word adds 1 to the
dimension its hash picks), normalised, so texts that share words are similar and
the same text always gets the same vector. Unlike completions, requests are not logged.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DEFAULT_DIMENSIONS = 1536
_WORD = re.compile(r"\w+")


def hashed_vector(text: str, dimensions: int) -> list[float]:
    """The normalised hashed bag of words of `text`."""
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vector[int.from_bytes(digest, "little") % dimensions] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def _encoded(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def embeddings_route() -> Route:
    """The route; refuses what OpenAI refuses with a 400 in its error shape."""

    async def embeddings(request: Request) -> JSONResponse:
        body = await request.json()
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            error = {"message": "'input' is invalid", "type": "invalid_request_error"}
            return JSONResponse({"error": error}, status_code=400)
        dimensions = int(body.get("dimensions") or DEFAULT_DIMENSIONS)
        encoding_format = body.get("encoding_format") or "float"
        tokens = sum(len(_WORD.findall(text)) for text in texts)
        data = [
            {
                "object": "embedding",
                "index": index,
                "embedding": _encoded(hashed_vector(text, dimensions), encoding_format),
            }
            for index, text in enumerate(texts)
        ]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return JSONResponse(
            {"object": "list", "data": data, "model": body.get("model"), "usage": usage}
        )

    return Route("/v1/embeddings", embeddings, methods=["POST"])
