"""One chat turn: history, user message, streamed answer, events, chunks."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal

from chatbus_contracts import subjects
from chatbus_contracts.chunks import DeltaChunk, EndChunk, ErrorChunk
from chatbus_contracts.commands import GenerateReply
from chatbus_contracts.common import TokenUsage, derived_id, utc_now
from chatbus_contracts.errors import ErrorCode
from chatbus_contracts.events import (
    ConversationCreated,
    MessageCreated,
    MessageFailed,
    UsageRecorded,
)
from chatbus_contracts.queries import GetHistory, HistoryReply, MessageView
from chatbus_contracts.streams import INFERENCE_CONSUMER
from chatbus_runtime.bus import publish_event
from faststream.nats import NatsBroker, NatsMessage

from .keepalive import in_progress_while
from .pricing import price_call
from .prompt import build_prompt
from .providers.base import CompletionRequest, Finished, ProviderError, TextDelta
from .routing import ProviderRouter, Route

logger = logging.getLogger(__name__)


@dataclass
class _Progress:
    """What has been streamed so far."""

    seq: int = 0
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _title(content: str, max_chars: int = 60) -> str:
    line = " ".join(content.split())
    return line if len(line) <= max_chars else line[: max_chars - 1].rstrip() + "…"


class TurnRunner:
    """Runs `GenerateReply` commands; every event id is derived from the request id."""

    def __init__(
        self, broker: NatsBroker, router: ProviderRouter, *, history_timeout_seconds: float
    ) -> None:
        self._broker = broker
        self._router = router
        self._history_timeout = history_timeout_seconds

    async def run(self, request: GenerateReply, msg: NatsMessage) -> None:
        """Run one turn to its end (answer or error); raises only for infrastructure failures."""
        started = time.monotonic()
        history = await self._history(request)
        if history is None:
            await self._fail(
                request,
                None,
                _Progress(),
                ProviderError(ErrorCode.CONVERSATION_NOT_FOUND, "conversation not found"),
            )
            return
        await self._publish_user_message(request, history)
        progress = _Progress()
        route: Route | None = None
        try:
            route = self._router.route(request.model, request.provider)
            async with in_progress_while(msg, INFERENCE_CONSUMER.ack_wait_seconds / 3):
                finished = await self._stream(request, route, history, progress)
        except ProviderError as error:
            await self._fail(request, route, progress, error)
            return
        latency_ms = int((time.monotonic() - started) * 1000)
        await self._complete(request, route, progress, finished, latency_ms)

    async def _history(self, request: GenerateReply) -> list[MessageView] | None:
        if request.new_conversation:
            return []
        query = GetHistory(
            user_id=request.user_id,
            conversation_id=request.conversation_id,
            exclude_request_id=request.request_id,
        )
        response = await self._broker.request(
            query, subjects.CONVERSATION_QUERY_HISTORY, timeout=self._history_timeout
        )
        reply = HistoryReply.model_validate_json(response.body)
        return reply.messages if reply.found else None

    async def _publish_user_message(
        self, request: GenerateReply, history: list[MessageView]
    ) -> None:
        if request.new_conversation:
            await publish_event(
                self._broker,
                ConversationCreated(
                    event_id=derived_id(request.request_id, subjects.CONVERSATION_CREATED),
                    user_id=request.user_id,
                    conversation_id=request.conversation_id,
                    title=_title(request.content),
                    created_at=request.accepted_at,
                ),
            )
        await publish_event(
            self._broker,
            MessageCreated(
                event_id=derived_id(request.request_id, subjects.MESSAGE_CREATED, "user"),
                user_id=request.user_id,
                message_id=request.user_message_id,
                conversation_id=request.conversation_id,
                request_id=request.request_id,
                role="user",
                content=request.content,
                parent_id=history[-1].id if history else None,
                created_at=request.accepted_at,
            ),
        )

    async def _stream(
        self,
        request: GenerateReply,
        route: Route,
        history: list[MessageView],
        progress: _Progress,
    ) -> Finished:
        completion = CompletionRequest(
            model=route.model,
            messages=build_prompt(request, history),
            temperature=request.temperature,
            max_tokens=request.max_tokens,
        )
        async for event in route.provider.stream(completion):
            if isinstance(event, TextDelta):
                progress.seq += 1
                progress.parts.append(event.text)
                chunk = DeltaChunk(request_id=request.request_id, seq=progress.seq, text=event.text)
                await self._broker.publish(chunk, request.reply_subject)
            else:
                return event
        raise ProviderError("provider_error", "the provider stream ended without finishing", True)

    async def _complete(
        self,
        request: GenerateReply,
        route: Route,
        progress: _Progress,
        finished: Finished,
        latency_ms: int,
    ) -> None:
        provider = route.provider.name
        cost, price_source = price_call(finished.usage, finished.model, provider)
        await publish_event(
            self._broker,
            MessageCreated(
                event_id=derived_id(request.request_id, subjects.MESSAGE_CREATED, "assistant"),
                user_id=request.user_id,
                message_id=request.assistant_message_id,
                conversation_id=request.conversation_id,
                request_id=request.request_id,
                role="assistant",
                content=progress.text,
                parent_id=request.user_message_id,
                created_at=utc_now(),
                model=finished.model,
                provider=provider,
                usage=finished.usage,
                cost_usd=cost,
                finish_reason=finished.finish_reason,
                latency_ms=latency_ms,
            ),
        )
        await self._record_usage(
            request,
            provider,
            finished.model,
            finished.usage,
            cost,
            price_source,
            latency_ms,
            finished,
        )
        await self._broker.publish(
            EndChunk(
                request_id=request.request_id,
                seq=progress.seq + 1,
                message_id=request.assistant_message_id,
                finish_reason=finished.finish_reason,
                usage=finished.usage,
                cost_usd=cost,
                model=finished.model,
                provider=provider,
                latency_ms=latency_ms,
            ),
            request.reply_subject,
        )

    async def _record_usage(
        self,
        request: GenerateReply,
        provider: str,
        model: str,
        usage: TokenUsage,
        cost: Decimal | None,
        price_source: str | None,
        latency_ms: int | None,
        finished: Finished | None,
    ) -> None:
        await publish_event(
            self._broker,
            UsageRecorded(
                event_id=derived_id(request.request_id, subjects.USAGE_RECORDED),
                user_id=request.user_id,
                request_id=request.request_id,
                conversation_id=request.conversation_id,
                message_id=request.assistant_message_id,
                status="completed" if finished else "failed",
                provider=provider,
                model=model,
                usage=usage,
                cost_usd=cost,
                price_source=price_source,
                latency_ms=latency_ms,
                finish_reason=finished.finish_reason if finished else "error",
            ),
        )

    async def _fail(
        self,
        request: GenerateReply,
        route: Route | None,
        progress: _Progress,
        error: ProviderError,
    ) -> None:
        logger.warning("turn %s failed: %s", request.request_id, error)
        provider = route.provider.name if route else None
        model = route.model if route else None
        await publish_event(
            self._broker,
            MessageFailed(
                event_id=derived_id(request.request_id, subjects.MESSAGE_FAILED),
                user_id=request.user_id,
                message_id=request.assistant_message_id,
                conversation_id=request.conversation_id,
                request_id=request.request_id,
                code=error.code,
                error=error.message,
                partial_content=progress.text,
                usage=error.partial_usage,
                model=model,
                provider=provider,
            ),
        )
        if error.partial_usage is not None and provider and model:
            cost, source = price_call(error.partial_usage, model, provider)
            await self._record_usage(
                request, provider, model, error.partial_usage, cost, source, None, None
            )
        await self._broker.publish(
            ErrorChunk(
                request_id=request.request_id,
                seq=progress.seq + 1,
                code=error.code,
                message=error.message,
                retryable=error.retryable,
            ),
            request.reply_subject,
        )
