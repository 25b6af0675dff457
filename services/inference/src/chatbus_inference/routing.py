"""Which providers answer a turn: the named model first, then its fallback chain."""

from __future__ import annotations

from dataclasses import dataclass

from chatbus_contracts.errors import ErrorCode
from chatbus_contracts.queries import ModelList

from .catalogue import Catalogue
from .providers.base import ChatProvider, PooledProvider, ProviderError

# Preferred default model per configured provider, in this order.
_DEFAULTS = (("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku"), ("gemini", "gemini-flash"))
TOOLS_UNSUPPORTED = "tools are supported for the openai provider only"


@dataclass(frozen=True)
class Route:
    """A provider and the upstream model name to send it."""

    provider: ChatProvider
    model: str
    context_window: int
    max_output_tokens: int


class ProviderRouter:
    """Maps a turn's model (and optional provider) to an ordered list of routes.

    With no real provider configured every turn goes to the `demo` provider, which
    labels its answers as such.
    """

    def __init__(
        self,
        providers: dict[str, ChatProvider],
        catalogue: Catalogue,
        default_model: str | None = None,
    ) -> None:
        self._providers = providers
        self._catalogue = catalogue
        self._demo_only = set(providers) == {"demo"}
        fallback = next((m for p, m in _DEFAULTS if p in providers), "demo")
        self.default_model = "demo" if self._demo_only else default_model or fallback

    async def aclose(self) -> None:
        """Close the connections the adapters pool."""
        for provider in self._providers.values():
            if isinstance(provider, PooledProvider):
                await provider.aclose()

    def routes(self, model: str | None, provider: str | None = None) -> list[Route]:
        """The primary route, then every fallback whose provider is configured."""
        name = "demo" if self._demo_only else model or self.default_model
        primary = self._route(name, provider, required=True)
        assert primary is not None
        chain = [primary]
        if provider is None:
            for fallback in self._catalogue.entry(name).fallbacks:
                route = self._route(fallback, None, required=False)
                if route is not None and route not in chain:
                    chain.append(route)
        return chain

    def _route(self, name: str, provider: str | None, *, required: bool) -> Route | None:
        entry = self._catalogue.entry(name)
        provider_name = provider or entry.provider
        adapter = self._providers.get(provider_name)
        if adapter is None:
            if required:
                raise ProviderError(
                    "invalid_request", f"provider {provider_name!r} of model {name!r} is not set up"
                )
            return None
        return Route(adapter, entry.upstream, entry.context_window, entry.max_output_tokens)

    def listing(self) -> ModelList:
        """What `GET /v1/models` shows."""
        return ModelList(
            models=self._catalogue.listing(set(self._providers)), default_model=self.default_model
        )


def tool_routes(routes: list[Route]) -> list[Route]:
    """The routes of a turn with tools: never one whose provider would drop them.

    The named model's provider must take tools (else `invalid_request`, not retried);
    fallbacks to providers that don't are skipped.
    """
    if not routes[0].provider.supports_tools:
        raise ProviderError(ErrorCode.INVALID_REQUEST, TOOLS_UNSUPPORTED)
    return [route for route in routes if route.provider.supports_tools]
