"""`POST /v1/embeddings` in the OpenAI wire format, answered by the embeddings service.

Input is a string or a list of up to 2,048 non-empty strings (token arrays are not
accepted). A text longer than its model's window is cut to it, and the response names
the cut inputs in the extension field `truncated_inputs`. Every call is billed in the
usage ledger (`kind=embedding`); an `Idempotency-Key` makes a retried call bill once.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal
from uuid import uuid4

from chatbus_contracts.common import derived_id
from chatbus_contracts.embeddings import MAX_INPUT_ITEMS, MAX_TEXT_CHARS, unpack_vector
from chatbus_contracts.errors import ErrorCode
from fastapi import APIRouter, Header, status
from nats.errors import Error as NatsError
from pydantic import BaseModel, ConfigDict, Field

from .deps import CurrentIdentity, State
from .embeddings import Embeddings, EmbedRefusedError
from .errors import ApiError, BadRequest, unavailable
from .limits import RateLimited

router = APIRouter(tags=["openai-compatible"])


class EmbeddingRequest(BaseModel):
    """OpenAI's embeddings request; unknown fields (e.g. `user`) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    input: str | list[Any]
    model: str = Field(min_length=1, max_length=200)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1, le=4096)


def texts_of(raw: str | list[Any]) -> list[str]:
    """The inputs as a list of non-empty strings; `BadRequest` for anything else."""
    items = [raw] if isinstance(raw, str) else raw
    if not items:
        raise BadRequest("input must not be empty", "input")
    if len(items) > MAX_INPUT_ITEMS:
        raise BadRequest(
            f"input may hold at most {MAX_INPUT_ITEMS} items, not {len(items)}", "input"
        )
    for index, item in enumerate(items):
        where = "input" if isinstance(raw, str) else f"input[{index}]"
        if not isinstance(item, str):
            raise BadRequest(f"{where} must be a string (token arrays are not accepted)", where)
        if not item.strip():
            raise BadRequest(f"{where} must not be empty", where)
        if "\x00" in item:
            raise BadRequest(f"{where} may not contain NUL characters", where)
    return items


@router.post("/v1/embeddings")
async def create_embeddings(
    body: EmbeddingRequest,
    identity: CurrentIdentity,
    state: State,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> dict[str, Any]:
    """Embed the input; billed to the caller."""
    texts = texts_of(body.input)
    cut = {index for index, text in enumerate(texts) if len(text) > MAX_TEXT_CHARS}
    texts = [text[:MAX_TEXT_CHARS] for text in texts]
    request_id = (
        derived_id(identity.user_id, "embeddings", idempotency_key) if idempotency_key else uuid4()
    )
    try:
        await state.limiter.admit(identity)
        embeddings = await state.embeddings.embed(
            identity.user_id, request_id, body.model, texts, body.dimensions
        )
    except RateLimited as limited:
        retry_after = str(math.ceil(limited.retry_after_ms / 1000))
        raise ApiError(
            429, ErrorCode.RATE_LIMITED, str(limited), headers={"Retry-After": retry_after}
        ) from limited
    except EmbedRefusedError as refused:
        raise _refusal(refused) from refused
    except (TimeoutError, NatsError) as error:
        raise unavailable() from error
    return _response(embeddings, body.encoding_format, sorted(cut | set(embeddings.truncated)))


def _refusal(error: EmbedRefusedError) -> ApiError:
    code = error.refused.code
    if code == "provider_error":
        return ApiError(status.HTTP_502_BAD_GATEWAY, ErrorCode.PROVIDER_UNAVAILABLE, str(error))
    return BadRequest(str(error), "model" if code == "unknown_model" else "input")


def _encoded(packed: str, encoding_format: str) -> list[float] | str:
    # The service sends base64 float32, which is what `base64` asks for.
    return unpack_vector(packed) if encoding_format == "float" else packed


def _response(embeddings: Embeddings, encoding_format: str, truncated: list[int]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": _encoded(vector, encoding_format)}
            for index, vector in enumerate(embeddings.packed_vectors)
        ],
        "model": embeddings.model,
        "usage": {
            "prompt_tokens": embeddings.prompt_tokens,
            "total_tokens": embeddings.prompt_tokens,
        },
        "truncated_inputs": truncated,
    }
