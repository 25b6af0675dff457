"""What the provider adapter tests read from a stream: its events, and the error that ended it."""

from __future__ import annotations

from chatbus_inference.providers.base import (
    ChatProvider,
    CompletionRequest,
    ProviderError,
    StreamEvent,
    TextDelta,
)


async def collect(
    provider: ChatProvider, request: CompletionRequest
) -> tuple[list[StreamEvent], ProviderError | None]:
    """Every event of one stream, and its `ProviderError` (None when it finished)."""
    events: list[StreamEvent] = []
    try:
        async for event in provider.stream(request):
            events.append(event)
    except ProviderError as error:
        return events, error
    return events, None


def texts(events: list[StreamEvent]) -> list[str]:
    """The text deltas among `events`."""
    return [e.text for e in events if isinstance(e, TextDelta)]


async def failed(
    provider: ChatProvider, request: CompletionRequest
) -> tuple[list[StreamEvent], ProviderError]:
    """The events of a stream that must end in a `ProviderError`, and that error."""
    events, error = await collect(provider, request)
    assert error is not None, "the stream finished without an error"
    return events, error
