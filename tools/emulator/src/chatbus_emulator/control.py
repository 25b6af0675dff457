"""Control API for tests: queue scripted responses, inspect requests, reset."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from chatbus_emulator.state import EmulatorState


def control_routes(state: EmulatorState) -> list[Route]:
    """``/_emulator/script``, ``/_emulator/requests`` and ``/_emulator/reset``."""

    async def queue_script(request: Request) -> JSONResponse:
        try:
            data = await request.json()
        except ValueError:
            return JSONResponse({"error": "body must be JSON"}, status_code=400)
        items = data if isinstance(data, list) else [data]
        if not all(isinstance(item, dict) for item in items):
            return JSONResponse({"error": "expected a list of objects"}, status_code=400)
        try:
            queued = state.script(*items)
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"queued": queued})

    async def pending_script(request: Request) -> JSONResponse:
        return JSONResponse([item.to_dict() for item in state.pending_script()])

    async def list_requests(request: Request) -> JSONResponse:
        return JSONResponse([record.to_json() for record in state.requests()])

    async def reset(request: Request) -> JSONResponse:
        state.reset()
        return JSONResponse({"ok": True})

    return [
        Route("/_emulator/script", queue_script, methods=["POST"]),
        Route("/_emulator/script", pending_script, methods=["GET"]),
        Route("/_emulator/requests", list_requests, methods=["GET"]),
        Route("/_emulator/reset", reset, methods=["POST"]),
    ]
