"""One chat turn: history, user message, streamed answer (with retries and fallback), events.

    run(request, delivery)
      earlier attempts ── the newest stored chunk: go on (a retry first publishes a
                          restart chunk), or the turn ended already, or this delivery
                          is stale (attempts.py)
      plan     ── conversation.query.history: the branch and settings (plan.py),
                  at the same time as the look back, a stop mark and the budget
      user message.created (+ conversation.created for a new conversation;
                            none for a regenerate), published once the first
                            chunk is out (or 50 ms passed without one); every end
                            of the turn waits for it first
      for route in [model, *fallbacks]:            a retryable failure before any token
          (with tools: only routes whose provider takes them, else invalid_request)
          reserve the worst-case cost (budgets.py)   or fail with budget_exceeded
          stream_with_retries(route) → delta chunks   moves on to the next route
      ├── finished → assistant message.created, usage.recorded, end chunk
      ├── chat.stop → partial message.created, usage.recorded (stopped), stopped chunk
      └── failed    → message.failed, usage.recorded if anything to bill, error chunk
      the first answer of an untitled conversation → a generated title (titles.py)

Every event id is derived from the request id, so a redelivered turn republishes the
same events and JetStream drops the duplicates. Nothing of an attempt's answer is
stored before it finished, so a dead replica leaves only chunks, which readers drop
once the next attempt's restart chunk arrives. A replica that died after storing the
answer but before its terminal chunk leaves the answer: the retry ends the turn with it
(usage.recorded again, deduplicated; the terminal chunk) instead of answering anew.
A stop asked for before generation (running.py, stop_marks.py) ends the turn as
stopped without an answer. Chunks go through a `ChunkSender`, which publishes them
again after a NATS reconnect and has the terminal one acknowledged by the stream.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, TypeVar
from uuid import UUID

from chatbus_contracts import subjects
from chatbus_contracts.chunks import DeltaChunk, EndChunk, ErrorChunk, StoppedChunk
from chatbus_contracts.commands import GenerateReply
from chatbus_contracts.common import FinishReason, TokenUsage, derived_id, first_words, utc_now
from chatbus_contracts.events import ConversationCreated, Event, MessageCreated
from chatbus_contracts.streams import INFERENCE_CONSUMER
from chatbus_runtime.bus import publish_event
from chatbus_runtime.chunks import ChunkSender
from faststream.nats import NatsBroker
from nats.aio.msg import Msg

from .attempts import Verdict, announce_restart, attempt_of, end_with_stored, look_back
from .billing import estimate_usage, usage_recorded
from .budgets import BudgetBook, worst_case_cost
from .failures import message_failed
from .keepalive import in_progress_while
from .memory import Memory
from .plan import TurnPlan, plan_turn, stored_answer
from .preferences import PreferencesReader
from .prompt import trim_to_window
from .providers.base import (
    CompletionRequest,
    Finished,
    PromptMessage,
    ProviderError,
    StreamEvent,
    TextDelta,
)
from .resilience import RetryPolicy, StreamTimeouts, stream_with_retries
from .routing import ProviderRouter, Route, tool_routes
from .running import Outcome, Phase, RunningTurn, RunningTurns
from .stop_marks import StopMarks
from .titles import TitleWriter

logger = logging.getLogger(__name__)

# The user's message events wait for the first chunk, or this long without one.
USER_MESSAGE_DELAY_SECONDS = 0.05


@dataclass
class _Progress:
    """What this attempt has streamed so far, by which route, for which plan."""

    sender: ChunkSender
    attempt: int = 1
    plan: TurnPlan | None = None
    route: Route | None = None
    prompt: list[PromptMessage] = field(default_factory=list)
    seq: int = 0  # of the last chunk published, by this attempt or an earlier one
    last_attempt: int = 0  # of the last chunk an earlier delivery stored (0: none)
    parts: list[str] = field(default_factory=list)
    reserved: bool = False  # a budget reservation is held for the turn
    publish_user_message: Callable[[], Coroutine[Any, Any, None]] | None = None
    """The user's message (and new conversation) events, until they are on their way."""
    user_message: asyncio.Task[None] | None = None

    def start_user_message(self) -> None:
        """Publish the user's message events now, if nothing did yet.

        Once the first chunk is out (or after `USER_MESSAGE_DELAY_SECONDS` without one),
        so their PubAcks do not hold up the first token.
        """
        if self.publish_user_message is not None:
            self.user_message = asyncio.create_task(self.publish_user_message())
            self.publish_user_message = None

    def user_message_going(self) -> None:
        """After a chunk: start the user's message events; raise if their publish failed.

        A failed publish stops the stream at once; the request is delivered again.
        """
        self.start_user_message()
        if self.user_message is not None and self.user_message.done():
            self.user_message.result()

    async def user_message_published(self) -> None:
        """Wait for the user's message events: every end of the turn comes after them."""
        self.start_user_message()
        if self.user_message is not None:
            await self.user_message

    async def abandon_user_message(self) -> None:
        """A delivery that ended without waiting for them (dropped, handed back) stops them."""
        self.publish_user_message = None
        if self.user_message is not None:
            self.user_message.cancel()  # nothing once it is done
            await asyncio.gather(self.user_message, return_exceptions=True)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def streamed(self) -> bool:
        """Whether this attempt has sent any text."""
        return bool(self.parts)


class TurnRunner:
    """Runs `GenerateReply` commands and stops them on request."""

    def __init__(
        self,
        broker: NatsBroker,
        router: ProviderRouter,
        *,
        history_timeout_seconds: float,
        retry_policy: RetryPolicy,
        timeouts: StreamTimeouts,
        titles: TitleWriter,
        budgets: BudgetBook,
        memory: Memory | None,
    ) -> None:
        self._broker = broker
        self._memory = memory
        self._budgets = budgets
        self._titles = titles
        self._router = router
        self._history_timeout = history_timeout_seconds
        self._retry_policy = retry_policy
        self._timeouts = timeouts
        self._turns = RunningTurns()
        self._stop_marks = StopMarks(broker)
        self._preferences = PreferencesReader(broker)

    def stop(self, request_id: UUID, user_id: str) -> bool:
        """Stop a turn running here; False if it is not here, not the user's, or storing."""
        return self._turns.stop(request_id, user_id)

    async def drain(self, seconds: float) -> None:
        """Shutting down: let running turns finish for `seconds`, then hand them back."""
        await self._turns.drain(seconds)

    async def run(self, request: GenerateReply, msg: Msg) -> Outcome:
        """Run this delivery of a turn; raises only for infrastructure failures.

        `in_progress` keeps the ack deadline moving for the whole turn, so only the
        request of a replica that died (or handed it back) is delivered again.
        """
        if self._turns.draining:
            return Outcome.HAND_BACK
        running = self._turns.start(request.request_id, request.user_id)
        try:
            async with in_progress_while(msg, INFERENCE_CONSUMER.ack_wait_seconds / 3):
                progress = _Progress(
                    ChunkSender(self._broker, request.reply_subject), attempt_of(msg)
                )
                try:
                    return await self._attempt(request, running, progress)
                finally:
                    await progress.abandon_user_message()
        finally:
            self._turns.end(request.request_id, running)

    async def _attempt(
        self, request: GenerateReply, running: RunningTurn, progress: _Progress
    ) -> Outcome:
        started = time.monotonic()
        try:
            # Independent round trips overlap: time to first token is their longest, not
            # their sum. Only a budget reservation is left between them and the call.
            prepared, marked, budget_found = await asyncio.gather(
                self._prepare(request, running, progress),
                self._stop_marks.marked(request.request_id),
                self._budgets.budget_of(request.user_id, request.user_role),
                return_exceptions=True,
            )
            if isinstance(prepared, BaseException):
                raise prepared
            if isinstance(prepared, Outcome):
                return prepared
            plan = prepared
            progress.publish_user_message = functools.partial(
                self._publish_user_message, request, plan
            )
            asyncio.get_running_loop().call_later(
                USER_MESSAGE_DELAY_SECONDS, progress.start_user_message
            )
            running.stop_requested |= _result(marked)
            budget = _result(budget_found)
            if running.stop_requested:  # asked for before anything was generated
                running.phase = Phase.FINISHING
                await self._stopped(request, progress, started)
                return Outcome.ACK
            running.phase = Phase.GENERATING
            finished = await self._generate(request, plan, progress, budget)
        except asyncio.CancelledError:
            if not (running.stop_requested or running.handed_back):
                raise
            running.task.uncancel()
            if not running.stop_requested:
                return Outcome.HAND_BACK
            running.phase = Phase.FINISHING
            await self._stopped(request, progress, started)
            return Outcome.ACK
        except ProviderError as error:
            running.phase = Phase.FINISHING
            await self._fail(request, progress, error)
            return Outcome.ACK
        running.phase = Phase.FINISHING
        return await self._finish(request, running, progress, finished, started)

    async def _prepare(
        self, request: GenerateReply, running: RunningTurn, progress: _Progress
    ) -> TurnPlan | Outcome:
        """The turn's plan, or how to settle a delivery that has nothing to generate."""
        if progress.attempt > 1:
            settled = await self._retry(request, running, progress)
            if settled is not None:
                return settled
            progress.plan = await self._plan_turn(request)
            return progress.plan
        # The stored chunks' verdict wins over whatever the plan says.
        began, planned = await asyncio.gather(
            self._begin(request, progress), self._plan_turn(request), return_exceptions=True
        )
        if (ended := _result(began)) is not None:
            return ended
        progress.plan = _result(planned)
        return progress.plan

    async def _plan_turn(self, request: GenerateReply) -> TurnPlan:
        return await plan_turn(
            self._broker,
            request,
            self._history_timeout,
            memory=self._memory,
            preferences=self._preferences,
        )

    async def _retry(
        self, request: GenerateReply, running: RunningTurn, progress: _Progress
    ) -> Outcome | None:
        """Settle what earlier tries left, before planning (None: go on and generate).

        Right after its check of the stored chunks, a retry ends the turn with an answer
        an earlier try stored, or announces its restart, so an older try that stalled
        sees the newer one before it stores anything, and a plan that fails ends this
        attempt's chunks with an error its readers accept.
        """
        began, stored = await asyncio.gather(
            self._begin(request, progress),
            stored_answer(self._broker, request, self._history_timeout),
            return_exceptions=True,
        )
        if (ended := _result(began)) is not None:
            return ended
        if (stored := _result(stored)) is not None:
            running.phase = Phase.FINISHING
            terminal_at = progress.seq + 1, max(progress.last_attempt, 1)
            await end_with_stored(self._broker, progress.sender, request, stored, *terminal_at)
            return Outcome.ACK
        progress.seq += 1
        await announce_restart(progress.sender, request, progress.attempt, progress.seq)
        return None

    async def _begin(self, request: GenerateReply, progress: _Progress) -> Outcome | None:
        """Judge this delivery by the stored chunks."""
        looked = await look_back(self._broker, request, progress.attempt)
        if looked.verdict is Verdict.ENDED:
            return Outcome.ACK
        if looked.verdict is Verdict.STALE:
            return Outcome.DROP
        progress.seq, progress.last_attempt = looked.seq, looked.attempt
        return None

    async def _finish(
        self,
        request: GenerateReply,
        running: RunningTurn,
        progress: _Progress,
        finished: Finished,
        started: float,
    ) -> Outcome:
        """Store the answer, unless a newer delivery took the request over; then title it."""
        if (await look_back(self._broker, request, progress.attempt)).verdict is Verdict.STALE:
            return Outcome.DROP
        assert progress.route is not None and progress.plan is not None
        await self._complete(request, progress.route, progress, finished, started)
        if not progress.plan.wants_title:
            return Outcome.ACK
        running.phase = Phase.TITLING
        try:
            await self._titles.write(request, progress.route, progress.text)
        except asyncio.CancelledError:
            if not running.handed_back:
                raise
            running.task.uncancel()  # shutting down: the answer is stored, the title skipped
        return Outcome.ACK

    async def _publish_user_message(self, request: GenerateReply, plan: TurnPlan) -> None:
        if request.regenerate:
            return
        events: list[Event] = []
        if request.new_conversation:
            events.append(
                ConversationCreated(
                    event_id=derived_id(request.request_id, subjects.CONVERSATION_CREATED),
                    user_id=request.user_id,
                    conversation_id=request.conversation_id,
                    title=first_words(request.content),
                    settings=plan.conversation_settings,
                    created_at=request.accepted_at,
                ),
            )
        events.append(
            _message_created(
                request,
                "user",
                request.content,
                parent_id=plan.user_parent_id,
                created_at=request.accepted_at,
            )
        )
        # Consumers apply events in any order (a message may create its conversation).
        await _publish_all(self._broker, *events)

    async def _generate(
        self, request: GenerateReply, plan: TurnPlan, progress: _Progress, budget: Decimal | None
    ) -> Finished:
        settings = plan.settings
        routes = self._router.routes(settings.model, settings.provider)
        prompt = plan.prompt
        tool_use = request.tool_use
        if tool_use is not None:
            routes = tool_routes(routes)
        for index, route in enumerate(routes):
            progress.route = route
            max_tokens = settings.max_tokens or route.max_output_tokens
            progress.prompt = trim_to_window(prompt, route.context_window, max_tokens)
            if budget is not None:  # pricing the worst case costs ~0.1 ms; only a budget needs it
                worst_case = worst_case_cost(progress.prompt, max_tokens, route)
                progress.reserved |= await self._budgets.reserve(request, worst_case, budget)
            completion = CompletionRequest(
                model=route.model,
                messages=progress.prompt,
                temperature=settings.temperature,
                max_tokens=settings.max_tokens,
                tools=tool_use.tools if tool_use else None,
                tool_choice=tool_use.tool_choice if tool_use else None,
            )
            events = stream_with_retries(
                route.provider, completion, self._retry_policy, self._timeouts
            )
            try:
                return await self._relay(request, events, progress)
            except ProviderError as error:
                last = index == len(routes) - 1
                if progress.streamed or not error.retryable or last:
                    raise
                logger.warning(
                    "%s failed (%s); falling back to %s",
                    route.model,
                    error,
                    routes[index + 1].model,
                )
        raise AssertionError("routes() never returns an empty chain")

    async def _relay(
        self, request: GenerateReply, events: AsyncIterator[StreamEvent], progress: _Progress
    ) -> Finished:
        async for event in events:
            if isinstance(event, TextDelta):
                progress.seq += 1
                progress.parts.append(event.text)
                chunk = DeltaChunk(
                    request_id=request.request_id,
                    seq=progress.seq,
                    attempt=progress.attempt,
                    text=event.text,
                )
                await progress.sender.send(chunk)
                progress.user_message_going()
            else:
                assert isinstance(event, Finished)
                return event
        raise ProviderError("provider_error", "the provider stream ended without finishing", True)

    async def _publish_assistant(
        self,
        request: GenerateReply,
        plan: TurnPlan,
        route: Route,
        content: str,
        usage: TokenUsage,
        model: str,
        finish_reason: FinishReason,
        started: float,
    ) -> tuple[Decimal | None, int]:
        latency_ms = int((time.monotonic() - started) * 1000)
        recorded = usage_recorded(
            request, route.provider.name, model, usage, finish_reason, latency_ms
        )
        # Both at once: no consumer orders one after the other (a redelivery republishes
        # both, deduplicated by their derived ids).
        answer = _message_created(
            request,
            "assistant",
            content,
            parent_id=plan.assistant_parent_id,
            created_at=utc_now(),
            model=model,
            provider=route.provider.name,
            usage=usage,
            cost_usd=recorded.cost_usd,
            finish_reason=finish_reason,
            latency_ms=latency_ms,
            context_message_ids=plan.context_message_ids,
        )
        await _publish_all(self._broker, answer, recorded)
        return recorded.cost_usd, latency_ms

    async def _complete(
        self,
        request: GenerateReply,
        route: Route,
        progress: _Progress,
        finished: Finished,
        started: float,
    ) -> None:
        assert progress.plan is not None
        await progress.user_message_published()
        cost, latency_ms = await self._publish_assistant(
            request,
            progress.plan,
            route,
            progress.text,
            finished.usage,
            finished.model,
            finished.finish_reason,
            started,
        )
        end = EndChunk(
            request_id=request.request_id,
            seq=progress.seq + 1,
            attempt=progress.attempt,
            message_id=request.assistant_message_id,
            finish_reason=finished.finish_reason,
            usage=finished.usage,
            cost_usd=cost,
            model=finished.model,
            provider=route.provider.name,
            latency_ms=latency_ms,
            tool_calls=list(finished.tool_calls) or None,
        )
        await progress.sender.send_last(end)

    async def _stopped(self, request: GenerateReply, progress: _Progress, started: float) -> None:
        """Keep and bill the partial answer of a stopped turn."""
        await progress.user_message_published()
        # Before a route was chosen nothing was reserved; after, the bill settles it.
        if progress.route is not None and progress.plan is not None:
            usage = estimate_usage(progress.prompt, progress.parts)
            await self._publish_assistant(
                request,
                progress.plan,
                progress.route,
                progress.text,
                usage,
                progress.route.model,
                "stopped",
                started,
            )
        stopped = StoppedChunk(
            request_id=request.request_id,
            seq=progress.seq + 1,
            attempt=progress.attempt,
            message_id=request.assistant_message_id,
        )
        await progress.sender.send_last(stopped)

    async def _fail(
        self, request: GenerateReply, progress: _Progress, error: ProviderError
    ) -> None:
        logger.warning("turn %s failed: %s", request.request_id, error)
        await progress.user_message_published()
        route = progress.route
        usage = error.partial_usage
        if usage is None and progress.streamed:
            usage = estimate_usage(progress.prompt, progress.parts)
        failed = message_failed(
            request,
            error.code,
            error.message,
            partial_content=progress.text,
            usage=usage,
            model=route.model if route else None,
            provider=route.provider.name if route else None,
        )
        await publish_event(self._broker, failed)
        if usage is None or route is None:
            if progress.reserved:
                await self._budgets.release(request)
        else:
            await publish_event(
                self._broker,
                usage_recorded(
                    request, route.provider.name, route.model, usage, "error", None, status="failed"
                ),
            )
        chunk = ErrorChunk(
            request_id=request.request_id,
            seq=progress.seq + 1,
            attempt=progress.attempt,
            code=error.code,
            message=error.message,
            retryable=error.retryable,
        )
        await progress.sender.send_last(chunk)


ResultT = TypeVar("ResultT")


def _message_created(
    request: GenerateReply,
    role: Literal["user", "assistant"],
    content: str,
    **fields: Any,
) -> MessageCreated:
    """The `message.created` of the turn's question or answer (`fields`: the rest of it).

    Its id is derived from the request and the role, so a redelivered turn's republish
    is a duplicate.
    """
    message_id = request.user_message_id if role == "user" else request.assistant_message_id
    return MessageCreated(
        event_id=derived_id(request.request_id, subjects.MESSAGE_CREATED, role),
        user_id=request.user_id,
        message_id=message_id,
        conversation_id=request.conversation_id,
        request_id=request.request_id,
        role=role,
        content=content,
        **fields,
    )


async def _publish_all(broker: NatsBroker, *events: Event) -> None:
    """Publish `events` at once; the first failure raised once every publish is over."""
    outcomes = await asyncio.gather(
        *(publish_event(broker, event) for event in events), return_exceptions=True
    )
    for outcome in outcomes:
        _result(outcome)


def _result(outcome: ResultT | BaseException) -> ResultT:
    """The value of a `gather(..., return_exceptions=True)` entry; its exception raised."""
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome
