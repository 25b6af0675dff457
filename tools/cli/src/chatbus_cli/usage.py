"""`chatbus usage`: the caller's calls, tokens and cost from `GET /v1/usage`."""

from __future__ import annotations

from chatbus_client import RestClient
from chatbus_contracts.common import format_usd
from chatbus_contracts.usage import UsageSummary, UsageTotals

from .output import print_json, print_table

COLUMNS = ["key", "calls", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd"]


async def fetch_usage(
    url: str, token: str, *, start: str | None, end: str | None, group_by: str | None
) -> UsageSummary:
    """The usage summary the gateway answers for `token`'s user."""
    async with RestClient(url, token) as client:
        return await client.usage(from_=start, to=end, group_by=group_by)


def _row(key: str, totals: UsageTotals) -> dict[str, object]:
    return {
        "key": key,
        "calls": totals.calls,
        "prompt_tokens": totals.prompt_tokens,
        "completion_tokens": totals.completion_tokens,
        "total_tokens": totals.total_tokens,
        "cost_usd": format_usd(totals.cost_usd),
    }


def print_usage(summary: UsageSummary, *, as_json: bool) -> None:
    """A table of the groups and the total (or the summary as JSON)."""
    if as_json:
        print_json(summary.model_dump(mode="json"))
        return
    rows = [_row(group.key or "-", group.totals) for group in summary.groups]
    rows.append(_row("total", summary.totals))
    window = f"{summary.start:%Y-%m-%d %H:%M} to {summary.end:%Y-%m-%d %H:%M} UTC"
    print_table(rows, COLUMNS, title=f"usage {window}")
