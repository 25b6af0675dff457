"""Google Gemini (Gemini Developer API or Vertex AI) through the `google-genai` SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator

from chatbus_contracts.common import FinishReason, TokenUsage
from google import genai
from google.genai import errors, types

from .base import CompletionRequest, Finished, ProviderError, StreamEvent, TextDelta, retry_after

_ROLES = {"user": "user", "assistant": "model"}

_FINISH_REASONS: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "MALFORMED_FUNCTION_CALL": "tool_calls",
    "UNEXPECTED_TOOL_CALL": "tool_calls",
    "TOO_MANY_TOOL_CALLS": "tool_calls",
    "OTHER": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
}
"""Everything else (SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII, ...) is a filter."""


def _finish_reason(raw: types.FinishReason | str) -> FinishReason:
    value = raw.value if isinstance(raw, types.FinishReason) else str(raw)
    return _FINISH_REASONS.get(value, "content_filter")


def _usage(raw: types.GenerateContentResponseUsageMetadata, *, estimated: bool) -> TokenUsage:
    # `prompt_token_count` already includes the cached tokens; thinking is billed as output.
    return TokenUsage(
        prompt_tokens=raw.prompt_token_count or 0,
        completion_tokens=(raw.candidates_token_count or 0) + (raw.thoughts_token_count or 0),
        cached_tokens=raw.cached_content_token_count or 0,
        estimated=estimated,
    )


def _contents(request: CompletionRequest) -> list[types.Content]:
    return [
        types.Content(role=_ROLES[m.role], parts=[types.Part(text=m.content)])
        for m in request.messages
        if m.role != "system"
    ]


def _config(request: CompletionRequest) -> types.GenerateContentConfig:
    system = [types.Part(text=m.content) for m in request.messages if m.role == "system"]
    return types.GenerateContentConfig(
        system_instruction=types.Content(parts=system) if system else None,
        temperature=request.temperature,
        max_output_tokens=request.max_tokens,
    )


def _provider_error(error: errors.APIError) -> ProviderError:
    mapped = _coded_error(error)
    response = getattr(error, "response", None)  # the SDK keeps the HTTP answer
    mapped.retry_after_seconds = retry_after(getattr(response, "headers", None))
    return mapped


def _coded_error(error: errors.APIError) -> ProviderError:
    code, message = error.code, str(error)
    if code == 429:
        return ProviderError("rate_limited", message, retryable=True)
    # An invalid key is a 400 INVALID_ARGUMENT whose ErrorInfo reason is API_KEY_INVALID.
    if code in (401, 403) or "API_KEY_INVALID" in message:
        return ProviderError("auth_failed", message)
    if code in (400, 404, 413):
        lowered = message.lower()
        too_long = "exceeds the maximum number of tokens" in lowered or "too long" in lowered
        return ProviderError("context_too_long" if too_long else "invalid_request", message)
    if code == 408 or 500 <= code < 600:
        return ProviderError("provider_unavailable", message, retryable=True)
    return ProviderError("provider_error", message)


def _broken_stream(detail: str, started: bool) -> ProviderError:
    """A stream that broke: retryable only if nothing was yielded yet."""
    if started:
        return ProviderError("provider_error", detail)
    return ProviderError("provider_unavailable", detail, retryable=True)


class GeminiProvider:
    """Streams `generate_content_stream`; each chunk carries cumulative usage."""

    name = "gemini"
    supports_tools = False

    def __init__(self, client: genai.Client) -> None:
        self._client = client

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Stream one completion; errors after the first token are never retryable."""
        usage: types.GenerateContentResponseUsageMetadata | None = None
        finish_reason: FinishReason | None = None
        model = request.model
        started = False
        try:
            chunks = await self._client.aio.models.generate_content_stream(
                model=request.model, contents=_contents(request), config=_config(request)
            )
            async for chunk in chunks:
                model = chunk.model_version or model
                if chunk.usage_metadata is not None:
                    usage = chunk.usage_metadata
                feedback = chunk.prompt_feedback
                if not chunk.candidates and feedback is not None and feedback.block_reason:
                    finish_reason = "content_filter"  # the prompt itself was blocked
                for candidate in (chunk.candidates or [])[:1]:
                    content = candidate.content
                    for part in (content.parts if content else None) or []:
                        if part.text and not part.thought:
                            started = True
                            yield TextDelta(part.text)
                    if candidate.finish_reason is not None:
                        finish_reason = _finish_reason(candidate.finish_reason)
        except errors.APIError as error:
            mapped = _provider_error(error)
            if started:
                mapped.retryable = False  # text went out; a retry would repeat it
                mapped.partial_usage = _usage(usage, estimated=True) if usage else None
            raise mapped from error
        except Exception as error:  # a dropped connection or a chunk that is not JSON
            mapped = _broken_stream(f"the stream broke: {type(error).__name__}: {error}", started)
            if started and usage is not None:
                mapped.partial_usage = _usage(usage, estimated=True)
            raise mapped from error
        if finish_reason is None or usage is None:
            raise _broken_stream("the stream ended without a finish reason and usage", started)
        yield Finished(
            usage=_usage(usage, estimated=False), finish_reason=finish_reason, model=model
        )
