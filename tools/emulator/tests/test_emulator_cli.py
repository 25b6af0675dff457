"""The chatbus-emulator command line, run as a real subprocess."""

from __future__ import annotations

import asyncio
import sys

import httpx
from chatbus_emulator.main import build_parser


def test_parser_defaults() -> None:
    args = build_parser().parse_args([])
    assert (args.host, args.port, args.reply) == ("127.0.0.1", 8900, None)
    assert args.first_token_delay_ms == args.inter_token_delay_ms == 0


async def test_cli_prints_url_and_serves_the_configured_reply() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chatbus_emulator",
        "--port",
        "0",
        "--reply",
        "from the cli",
        "--inter-token-delay-ms",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode().strip()
        prefix = "chatbus-emulator listening on "
        assert line.startswith(prefix)
        url = line.removeprefix(prefix)
        async with httpx.AsyncClient(base_url=url) as http:
            response = await http.post(
                "/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            )
        assert response.json()["choices"][0]["message"]["content"] == "from the cli"
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)
    assert process.stdout is not None
    assert await process.stdout.read() == b""
