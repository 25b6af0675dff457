"""The completion endpoint shared by both providers: record, script, plan, deliver."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from chatbus_emulator.choreography import body_steps, error_steps, stream_steps
from chatbus_emulator.delivery import Delivery, Step
from chatbus_emulator.plan import build_plan
from chatbus_emulator.records import RequestRecord, public_headers
from chatbus_emulator.shutdown import ShutdownSignal
from chatbus_emulator.state import EmulatorState
from chatbus_emulator.wire import JSON_HEADERS, SSE_HEADERS, ResponseIds, WireFormat, dumps


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _seconds_header(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


class CompletionEndpoint:
    """ASGI endpoint answering one provider's completion route."""

    def __init__(self, wire: WireFormat, state: EmulatorState, shutdown: ShutdownSignal) -> None:
        """Serve ``wire``'s format, using ``state`` for defaults, script and request log."""
        self._wire = wire
        self._state = state
        self._shutdown = shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the request, decide the answer, then deliver it."""
        request = Request(scope, receive)
        delivery = await self._prepare(request)
        await delivery(scope, receive, send)

    async def _prepare(self, request: Request) -> Delivery:
        body = _parse_json(await request.body())
        record = self._state.record_request(
            path=request.url.path,
            headers=public_headers(request.headers.items()),
            body=body,
            stream=isinstance(body, dict) and body.get("stream") is True,
        )
        ids = self._wire.ids(record.id, int(record.received_at))
        id_header = ((self._wire.request_id_header, ids.request_id),)

        problem = self._wire.invalid_request(body)
        if problem is not None:
            # A rejected request does not consume the script: it never reached "the model".
            error = dumps(self._wire.error_body(400, ids, problem))
            return self._deliver(error_steps(400, error, (*JSON_HEADERS, *id_header)), record)

        script = self._state.take_script()
        record.scripted = script is not None
        if script is not None and script.status is not None:
            steps = self._error_steps(script.status, script.retry_after, ids, id_header)
            return self._deliver(steps, record)

        plan = build_plan(
            script=script,
            state=self._state,
            prompt=self._wire.prompt(body),
            max_tokens=self._wire.max_tokens(body),
        )
        if record.stream:
            frames = self._wire.stream_frames(plan, body, ids)
            return self._deliver(stream_steps(frames, plan, (*SSE_HEADERS, *id_header)), record)
        answer = dumps(self._wire.completion_body(plan, body, ids))
        return self._deliver(body_steps(answer, plan, (*JSON_HEADERS, *id_header)), record)

    def _error_steps(
        self,
        status: int,
        retry_after: float | None,
        ids: ResponseIds,
        id_header: tuple[tuple[str, str], ...],
    ) -> list[Step]:
        headers = (*JSON_HEADERS, *id_header)
        if retry_after is not None:
            headers = (*headers, ("retry-after", _seconds_header(retry_after)))
        return error_steps(status, dumps(self._wire.error_body(status, ids)), headers)

    def _deliver(self, steps: list[Step], record: RequestRecord) -> Delivery:
        return Delivery(steps, record, self._shutdown)
