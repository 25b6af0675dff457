"""``GET /v1/models`` in whichever provider's format the caller speaks."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from chatbus_emulator import anthropic_wire, openai_wire
from chatbus_emulator.state import EmulatorState

# Fixed timestamps keep responses deterministic.
_CREATED = 1_700_000_000
_CREATED_AT = "2023-11-14T22:13:20Z"


def models_route(state: EmulatorState) -> Route:
    """OpenAI list format, or Anthropic's when the ``anthropic-version`` header is sent."""

    async def list_models(request: Request) -> JSONResponse:
        if "anthropic-version" in request.headers:
            return JSONResponse(anthropic_wire.models_list(state.models, _CREATED_AT))
        return JSONResponse(openai_wire.models_list(state.models, _CREATED))

    return Route("/v1/models", list_models, methods=["GET"])
