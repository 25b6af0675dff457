"""`chatbus chat`: the real console script, fed through stdin, against the test stack."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from .stack import Stack

pytestmark = pytest.mark.integration

CHATBUS = Path(sys.executable).with_name("chatbus")


class ChatProcess:
    """One `chatbus chat` subprocess; its stdout is collected as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.output = ""
        self._reader = asyncio.create_task(self._collect())

    @classmethod
    async def start(cls, stack: Stack, user: str, *args: str) -> ChatProcess:
        process = await asyncio.create_subprocess_exec(
            str(CHATBUS),
            "chat",
            "--url",
            stack.gateway_url,
            "--token",
            stack.token(user),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def _collect(self) -> None:
        assert self.process.stdout is not None
        while chunk := await self.process.stdout.read(1024):
            self.output += chunk.decode()

    async def type(self, *lines: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("".join(line + "\n" for line in lines).encode())
        await self.process.stdin.drain()

    async def wait_for(self, pattern: str, within_seconds: float = 30.0) -> re.Match[str]:
        """The first match of `pattern` in the output so far, waiting for it if need be."""
        async with asyncio.timeout(within_seconds):
            while (match := re.search(pattern, self.output)) is None:
                if self._reader.done():
                    raise AssertionError(f"output ended without {pattern!r}:\n{self.output}")
                await asyncio.sleep(0.02)
        return match

    async def finish(self, within_seconds: float = 30.0) -> tuple[int, str]:
        """Exit code and stderr once the process ended."""
        assert self.process.stderr is not None
        async with asyncio.timeout(within_seconds):
            errors = (await self.process.stderr.read()).decode()
            code = await self.process.wait()
            await self._reader
        return code, errors


async def _conversations(stack: Stack, user: str) -> list[dict[str, Any]]:
    """The user's conversations, oldest first, each with its messages' (role, content)."""
    rows = await stack.fetch(
        "SELECT id, title FROM conversation.conversations WHERE user_id = $1 "
        "AND deleted_at IS NULL ORDER BY created_at",
        user,
    )
    conversations = []
    for row in rows:
        messages = await stack.fetch(
            "SELECT role, content, finish_reason FROM conversation.messages "
            "WHERE conversation_id = $1 ORDER BY created_at",
            row["id"],
        )
        conversations.append(
            {"id": str(row["id"]), "messages": [(m["role"], m["content"]) for m in messages]}
        )
    return conversations


async def test_questions_commands_and_conversations(stack: Stack) -> None:
    user = f"cli-{uuid.uuid4().hex[:6]}"
    stack.emulator.reset()
    stack.emulator.script(
        {"reply": "Lisbon is lovely in May."},
        {"reply": "Porto has the best bridges."},
        {"reply": "Pack light."},
    )
    chat = await ChatProcess.start(stack, user)
    await chat.type("Plan a trip to Lisbon", "/list", "/new", "And Porto?", "/quit")
    code, errors = await chat.finish()
    assert (code, errors) == (0, "")

    async def both_answers_stored() -> bool:
        found = await _conversations(stack, user)
        return [len(c["messages"]) for c in found] == [2, 2]

    await stack.wait_for(both_answers_stored)
    lisbon, porto = await _conversations(stack, user)
    assert lisbon["messages"] == [
        ("user", "Plan a trip to Lisbon"),
        ("assistant", "Lisbon is lovely in May."),
    ]
    assert porto["messages"] == [
        ("user", "And Porto?"),
        ("assistant", "Porto has the best bridges."),
    ]
    lines = chat.output.splitlines()
    assert lines[0] == "Lisbon is lovely in May."
    assert re.fullmatch(rf"\* {lisbon['id']}  .+", lines[1]), lines  # the current one, marked
    assert lines[2:] == [
        "new conversation: your next question starts it",
        "Porto has the best bridges.",
    ]

    # A new session starts in one conversation and switches to the other, by id prefixes.
    again = await ChatProcess.start(stack, user, "--conversation", porto["id"][:6])
    await again.type(f"/switch {lisbon['id'][:8]}", "What should I pack?", "/help")
    await again.wait_for(r"/quit")
    again.process.send_signal(signal.SIGINT)  # at the prompt: the session ends
    code, errors = await again.finish()
    assert (code, errors) == (0, "")
    switched = re.findall(r"^switched to .* \((.+)\)$", again.output, re.MULTILINE)
    assert switched == [porto["id"], lisbon["id"]]
    assert f"({lisbon['id']})\nPack light.\n" in again.output

    async def follow_up_stored() -> bool:
        first = (await _conversations(stack, user))[0]
        return bool(first["messages"][-1] == ("assistant", "Pack light."))

    await stack.wait_for(follow_up_stored)


async def test_ctrl_c_stops_the_answer_and_the_session_goes_on(stack: Stack) -> None:
    user = f"cli-stop-{uuid.uuid4().hex[:6]}"
    stack.emulator.reset()
    stack.emulator.script(
        {"reply_tokens": 500, "inter_token_delay_ms": 20}, {"reply": "Still here."}
    )
    chat = await ChatProcess.start(stack, user)
    await chat.type("talk for a long time")
    await chat.wait_for(r"lorem ipsum dolor sit")
    chat.process.send_signal(signal.SIGINT)
    stopped = await chat.wait_for(r"\n\[stopped\]\n")
    partial = chat.output[: stopped.start()]
    await chat.type("are you there?", "/switch nothing-like-this", "/quit")
    code, errors = await chat.finish()
    assert code == 0 and chat.output.endswith("[stopped]\nStill here.\n")
    assert errors == "error: no conversation starts with 'nothing-like-this'\n"

    async def both_stored() -> bool:
        found = await _conversations(stack, user)
        return len(found) == 1 and len(found[0]["messages"]) == 4

    await stack.wait_for(both_stored)
    (conversation,) = await _conversations(stack, user)
    (_, question), (_, answer), _, last = conversation["messages"]
    assert question == "talk for a long time"
    assert answer == partial and 3 < len(answer.split()) < 500  # stopped, what was shown kept
    assert last == ("assistant", "Still here.")
    rows = await stack.fetch(
        "SELECT finish_reason FROM conversation.messages WHERE user_id = $1 "
        "AND role = 'assistant' ORDER BY created_at",
        user,
    )
    assert [row["finish_reason"] for row in rows] == ["stopped", "stop"]
