"""Builds the provider adapters whose credentials are configured."""

from __future__ import annotations

from ..settings import InferenceSettings
from .base import ChatProvider
from .demo import DemoProvider


def _secret(value: object) -> str | None:
    getter = getattr(value, "get_secret_value", None)
    return getter() if getter is not None else None


def configured_providers(settings: InferenceSettings) -> dict[str, ChatProvider]:
    """`demo` always; OpenAI, Anthropic and Gemini when their SDK variables are set.

    Credentials go from settings straight into the SDK clients; they never travel in
    NATS payloads and are never logged.
    """
    providers: dict[str, ChatProvider] = {"demo": DemoProvider(settings.demo_token_delay_ms / 1000)}
    if settings.openai_api_key is not None or settings.openai_base_url is not None:
        from openai import AsyncOpenAI

        from .openai import OpenAIProvider

        providers["openai"] = OpenAIProvider(
            AsyncOpenAI(
                # Ollama and other compatible servers accept any key.
                api_key=_secret(settings.openai_api_key) or "unused",
                base_url=settings.openai_base_url,
                max_retries=0,  # chatbus retries, with its own policy
            )
        )
    if settings.anthropic_api_key is not None or settings.anthropic_base_url is not None:
        from anthropic import AsyncAnthropic

        from .anthropic import AnthropicProvider

        providers["anthropic"] = AnthropicProvider(
            AsyncAnthropic(
                api_key=_secret(settings.anthropic_api_key) or "unused",
                base_url=settings.anthropic_base_url,
                max_retries=0,
            )
        )
    if settings.gemini_api_key is not None:
        from google import genai

        from .gemini import GeminiProvider

        providers["gemini"] = GeminiProvider(genai.Client(api_key=_secret(settings.gemini_api_key)))
    return providers
