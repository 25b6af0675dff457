"""The gateway's REST routes as typed methods (docs/api.md)."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from types import TracebackType
from typing import Any, Final, Literal, Self
from uuid import UUID

import httpx
from chatbus_contracts.conversations import Preferences, SearchHit, SearchResults
from chatbus_contracts.queries import (
    ConversationDetail,
    ConversationPage,
    ConversationView,
    ModelInfo,
    ModelList,
)
from chatbus_contracts.usage import UsageSummary

from ._errors import CONNECTION_FAILED, ChatbusError


class _Unset(Enum):
    UNSET = "UNSET"


UNSET: Final = _Unset.UNSET
"""Default of `update_conversation` arguments: leave the field as it is (None clears it)."""

Unset = Literal[_Unset.UNSET]


def _error_from(response: httpx.Response) -> ChatbusError:
    """The `ChatbusError` of an error answer (`{"error": {"code", "message", ...}}`)."""
    try:
        body = response.json()["error"]
        code, message = str(body["code"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        code, message = f"http_{response.status_code}", response.text[:500]
        body = {}
    retry_after = response.headers.get("retry-after", "")
    return ChatbusError(
        code,
        message,
        status=response.status_code,
        retryable=response.status_code in (429, 502, 503, 504),
        retry_after=float(retry_after) if retry_after.isdigit() else None,
        fields=body.get("fields") if isinstance(body, dict) else None,
    )


def _when(value: date | datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, date) else value


class RestClient:
    """REST calls to a gateway at `url` (http://host:port) with `Authorization: Bearer`.

    Every error answer raises `ChatbusError` with the body's `code` and `message` and
    the HTTP `status`; an unreachable gateway raises it with `connection_failed`.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        query = {key: value for key, value in (params or {}).items() if value is not None}
        try:
            response = await self._http.request(method, path, params=query, json=body)
        except httpx.TransportError as error:
            raise ChatbusError(
                CONNECTION_FAILED, f"{method} {path}: {error!r}", retryable=True
            ) from error
        if response.is_error:
            raise _error_from(response)
        return response.json()

    # --- conversations --------------------------------------------------------------

    async def list_conversations(
        self, *, limit: int = 20, cursor: str | None = None
    ) -> ConversationPage:
        """One page of the caller's conversations, newest first (`next_cursor` for more)."""
        data = await self._call(
            "GET", "/v1/conversations", params={"limit": limit, "cursor": cursor}
        )
        return ConversationPage.model_validate(data)

    async def get_conversation(self, conversation_id: UUID | str) -> ConversationDetail:
        """A conversation with every message (a tree by `parent_id`)."""
        data = await self._call("GET", f"/v1/conversations/{conversation_id}")
        return ConversationDetail.model_validate(data)

    async def create_conversation(
        self,
        title: str | None = None,
        *,
        system_prompt: str | None = None,
        model: str | None = None,
        provider: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> ConversationView:
        """Start an empty conversation; unset settings come from the caller's preferences."""
        given = {
            "title": title,
            "system_prompt": system_prompt,
            "model": model,
            "provider": provider,
            "temperature": temperature,
            "max_tokens": max_tokens,
        }
        body = {key: value for key, value in given.items() if value is not None}
        return ConversationView.model_validate(
            await self._call("POST", "/v1/conversations", body=body)
        )

    async def update_conversation(
        self,
        conversation_id: UUID | str,
        *,
        title: str | Unset = UNSET,
        system_prompt: str | Unset | None = UNSET,
        model: str | Unset | None = UNSET,
        provider: str | Unset | None = UNSET,
        temperature: float | Unset | None = UNSET,
        max_tokens: int | Unset | None = UNSET,
        active_message_id: UUID | str | Unset = UNSET,
    ) -> ConversationView:
        """Change only the fields given: rename, set or clear (None) a setting, switch branch."""
        given: dict[str, Any] = {
            "title": title,
            "system_prompt": system_prompt,
            "model": model,
            "provider": provider,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "active_message_id": active_message_id,
        }
        body = {
            key: str(value) if isinstance(value, UUID) else value
            for key, value in given.items()
            if value is not UNSET
        }
        data = await self._call("PATCH", f"/v1/conversations/{conversation_id}", body=body)
        return ConversationView.model_validate(data)

    async def rename_conversation(
        self, conversation_id: UUID | str, title: str
    ) -> ConversationView:
        """Give a conversation a title of the user's (never replaced by an automatic one)."""
        return await self.update_conversation(conversation_id, title=title)

    async def delete_conversation(self, conversation_id: UUID | str) -> None:
        """Delete a conversation (soft: gone from lists and search)."""
        await self._call("DELETE", f"/v1/conversations/{conversation_id}")

    # --- search, preferences, models, usage -----------------------------------------

    async def search(
        self, query: str, *, limit: int = 20, conversation_id: UUID | str | None = None
    ) -> list[SearchHit]:
        """Keyword search over the caller's messages, best match first."""
        params = {"q": query, "limit": limit, "conversation_id": conversation_id}
        data = await self._call("GET", "/v1/search", params=params)
        return SearchResults.model_validate(data).hits

    async def get_preferences(self) -> Preferences:
        """The caller's defaults for new conversations."""
        return Preferences.model_validate(await self._call("GET", "/v1/preferences"))

    async def set_preferences(
        self, *, default_model: str | None = None, default_system_prompt: str | None = None
    ) -> Preferences:
        """Replace the caller's defaults (a field left out becomes None)."""
        body = {"default_model": default_model, "default_system_prompt": default_system_prompt}
        return Preferences.model_validate(await self._call("PUT", "/v1/preferences", body=body))

    async def models(self) -> ModelList:
        """The models a turn may name (those whose provider is configured) and the default."""
        data = await self._call("GET", "/v1/models")
        fields = ModelInfo.model_fields
        return ModelList(
            default_model=data["default_model"],
            models=[
                ModelInfo.model_validate({k: v for k, v in item.items() if k in fields})
                for item in data["data"]
            ],
        )

    async def usage(
        self,
        *,
        from_: date | datetime | str | None = None,
        to: date | datetime | str | None = None,
        group_by: str | None = None,
    ) -> UsageSummary:
        """`GET /v1/usage?from=&to=&group_by=`: the caller's calls, tokens and cost."""
        params = {"from": _when(from_), "to": _when(to), "group_by": group_by}
        return UsageSummary.model_validate(await self._call("GET", "/v1/usage", params=params))
