"""Which provider answers a turn, and with which upstream model."""

from __future__ import annotations

from dataclasses import dataclass

from openai import AsyncOpenAI

from .providers.base import ChatProvider, ProviderError
from .providers.demo import DEMO_MODEL, DemoProvider
from .providers.openai import OpenAIProvider
from .settings import InferenceSettings


@dataclass(frozen=True)
class Route:
    """A provider and the model name to send it."""

    provider: ChatProvider
    model: str


class ProviderRouter:
    """Builds the configured providers once and picks one per turn.

    The demo provider is always there; OpenAI (or a compatible server) is added when
    `OPENAI_API_KEY` or `OPENAI_BASE_URL` is set. With no provider configured every
    turn goes to the demo provider, which labels its answers as such.
    """

    def __init__(self, settings: InferenceSettings) -> None:
        self._providers: dict[str, ChatProvider] = {
            "demo": DemoProvider(settings.demo_token_delay_ms / 1000),
        }
        if settings.openai_api_key is not None or settings.openai_base_url is not None:
            key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "none"
            client = AsyncOpenAI(api_key=key, base_url=settings.openai_base_url, max_retries=0)
            self._providers["openai"] = OpenAIProvider(client)
        self._default_model = settings.default_model or (
            settings.openai_default_model if "openai" in self._providers else DEMO_MODEL
        )

    @property
    def default_model(self) -> str:
        """The model a turn gets when it names none."""
        return self._default_model

    def route(self, model: str | None, provider: str | None) -> Route:
        """The route for a turn's optional model and provider names."""
        model = model or self._default_model
        if provider is not None:
            if provider not in self._providers:
                raise ProviderError("invalid_request", f"provider {provider!r} is not configured")
            return Route(self._providers[provider], model)
        if model == DEMO_MODEL or "openai" not in self._providers:
            return Route(self._providers["demo"], DEMO_MODEL)
        return Route(self._providers["openai"], model)
