"""REST routes: the model catalogue and health (conversations are in conversations_api)."""

from __future__ import annotations

from typing import Any

from chatbus_contracts import subjects
from chatbus_contracts.queries import ListModels, ModelList
from chatbus_contracts.streams import ALL_STREAMS
from chatbus_runtime import rpc
from fastapi import APIRouter, status
from nats.errors import Error as NatsError

from .deps import CurrentUser, State
from .errors import ApiError, unavailable

router = APIRouter()


@router.get("/v1/models")
async def list_models(user_id: CurrentUser, state: State) -> dict[str, Any]:
    """The model catalogue in the OpenAI list format (with chatbus's extra fields)."""
    try:
        listing = await rpc.ask(
            state.broker,
            subjects.MODELS_QUERY_LIST,
            ListModels(),
            ModelList,
            timeout_seconds=state.settings.query_timeout_seconds,
        )
    except (NatsError, TimeoutError) as error:
        raise unavailable() from error
    return {
        "object": "list",
        "default_model": listing.default_model,
        "data": [
            {"object": "model", "created": 0, "owned_by": model.provider, **model.model_dump()}
            for model in listing.models
        ],
    }


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: State) -> dict[str, str]:
    """Ready when NATS is connected and every stream exists, and not draining (SIGTERM)."""
    if state.drain.draining:
        raise ApiError(status.HTTP_503_SERVICE_UNAVAILABLE, "unavailable", "shutting down")
    broker = state.broker
    try:
        if not broker.connection.is_connected:
            raise ApiError(
                status.HTTP_503_SERVICE_UNAVAILABLE, "unavailable", "NATS is not connected"
            )
        js = broker.connection.jetstream()
        for spec in ALL_STREAMS:
            await js.stream_info(spec.name)
    except (NatsError, TimeoutError) as error:
        raise ApiError(status.HTTP_503_SERVICE_UNAVAILABLE, "unavailable", str(error)) from error
    return {"status": "ready"}
