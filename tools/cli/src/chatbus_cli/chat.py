"""`chatbus chat`: talk to a gateway from the terminal, one line per question.

Every line read from stdin is a question in the current conversation, and its answer
streams to stdout as it arrives. If the answer starts over (the server lost the
replica that was writing it), a `[restarted]` line says so and the new answer follows.
A line that starts with `/` is a command (`/help`). Ctrl-C during an answer stops the
generation (the partial answer is kept), and the prompt comes back. Ctrl-C at the
prompt, EOF or `/quit` ends the session.

On a terminal the prompt, the conversation list and a footer under each answer are
drawn with rich. Otherwise the output is plain text, for scripts and tests.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO
from uuid import UUID

from chatbus_client import ChatbusClient, ChatbusError, ChatStream, Turn
from chatbus_contracts.queries import ConversationView
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .settings import CliSettings
from .tokens import mint_token, read_secret

HELP = """\
Type a question and press Enter; the answer streams as it arrives.
Ctrl-C stops an answer; Ctrl-C at the prompt or Ctrl-D ends the session.
  /new         start a new conversation (with the next question)
  /list        your conversations, newest first
  /switch ID   continue that conversation (an id, or the start of one)
  /help        this text
  /quit        leave"""
LIST_LIMIT = 100


@dataclass(frozen=True)
class ChatOptions:
    """What `chatbus chat` was started with."""

    url: str
    token: str
    conversation: str | None = None
    model: str | None = None


def dev_token(user: str, data_dir: Path) -> str:
    """A dev JWT for `user`, signed like `chatbus token` does; MissingSecretError without one."""
    return mint_token(read_secret(CliSettings(), data_dir), user)


class LineReader:
    """Lines of a file descriptor, each read in a daemon thread when asked for.

    Not the loop's executor and not `sys.stdin`: a read still blocked on the terminal
    after `/quit` or Ctrl-C must neither keep the process alive nor hold the lock of
    stdin's buffer while the interpreter shuts down.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._requests: queue.SimpleQueue[asyncio.Future[str]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="chat-stdin", daemon=True)

    async def readline(self) -> str:
        """The next line with its newline; "" at the end of the input."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        if not self._thread.is_alive():
            self._thread.start()
        self._requests.put(future)
        return await future

    def _serve(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        while True:
            future = self._requests.get()
            while "\n" not in pending:
                chunk = os.read(self._fd, 4096)
                pending += decoder.decode(chunk, final=not chunk)
                if not chunk:
                    break
            line, newline, pending = pending.partition("\n")
            future.get_loop().call_soon_threadsafe(_resolve, future, line + newline)


def _resolve(future: asyncio.Future[str], line: str) -> None:
    if not future.done():
        future.set_result(line)


class Screen:
    """stdout: rich on a terminal, plain lines otherwise; errors go to stderr."""

    def __init__(self, out: TextIO, err: TextIO, *, interactive: bool) -> None:
        self._out = out
        self._err = err
        self.rich = Console(file=out, highlight=False) if out.isatty() else None
        self.interactive = interactive
        self._column = 0  # characters written since the last newline of an answer

    def prompt(self) -> None:
        if self.interactive:
            self.write("\n> " if self.rich else "> ")

    def write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()
        self._column = 0 if text.endswith("\n") else self._column + len(text)

    def line_typed(self) -> None:
        """The user's Enter ended the prompt's line."""
        self._column = 0

    def end_line(self) -> None:
        if self._column:
            self.write("\n")

    def say(self, text: str, style: str = "") -> None:
        self.end_line()
        if self.rich is not None:
            self.rich.print(Text(text, style=style))
        else:
            self.write(text + "\n")

    def error(self, text: str) -> None:
        self.end_line()
        self._err.write(f"error: {text}\n")
        self._err.flush()

    def conversations(self, items: list[ConversationView], current: UUID | None) -> None:
        if not items:
            self.say("no conversations yet")
        elif self.rich is None:
            for item in items:
                marker = "*" if item.id == current else " "
                self.write(f"{marker} {item.id}  {item.title}\n")
        else:
            table = Table("", "id", "title", "messages", "updated", box=None)
            for item in items:
                table.add_row(
                    "*" if item.id == current else "",
                    str(item.id)[:8],
                    Text(item.title),
                    str(item.message_count),
                    item.updated_at.astimezone().strftime("%Y-%m-%d %H:%M"),
                )
            self.rich.print(table)


def _footer(turn: Turn) -> str:
    parts = [turn.end.model] if turn.end is not None else []
    if turn.usage is not None:
        parts.append(f"{turn.usage.total_tokens} tokens")
    if turn.cost_usd is not None:
        parts.append(f"${turn.cost_usd}")
    return " · ".join(parts)


async def _stop_quietly(stream: ChatStream) -> None:
    # A turn that failed meanwhile reports its error through the stream already.
    with contextlib.suppress(ChatbusError):
        await stream.stop()


class ChatSession:
    """The read-ask-print loop of one `chatbus chat` run."""

    def __init__(self, client: ChatbusClient, options: ChatOptions, screen: Screen) -> None:
        self._client = client
        self._model = options.model
        self._screen = screen
        self._conversation_id: UUID | None = None
        self._on_interrupt: Callable[[], None] | None = None
        # A Ctrl-C between an answer and the prompt counts for the prompt: it ends the session.
        self._interrupt_pending = False

    def interrupt(self) -> None:
        """Ctrl-C: stop the answer being streamed, or end the session at the prompt."""
        if self._on_interrupt is not None:
            self._on_interrupt()
        else:
            self._interrupt_pending = True

    async def run(self, lines: LineReader, conversation: str | None) -> int:
        """Serve lines until /quit, EOF or Ctrl-C at the prompt; the exit code."""
        try:
            if conversation is not None and not await self._switch(conversation):
                return 1
        except ChatbusError as error:
            self._screen.error(f"{error.code}: {error.message}")
            return 1
        while (line := await self._next_line(lines)) is not None:
            text = line.strip()
            if not text:
                continue
            if text.startswith("/"):
                if not await self._command(text):
                    break
            else:
                await self._ask(text)
        return 0

    async def _next_line(self, lines: LineReader) -> str | None:
        """The next line, or None at EOF or on Ctrl-C."""
        if self._interrupt_pending:
            return None
        self._screen.prompt()
        interrupted = asyncio.Event()
        self._on_interrupt = interrupted.set
        reading = asyncio.ensure_future(lines.readline())
        waiting = asyncio.ensure_future(interrupted.wait())
        try:
            await asyncio.wait({reading, waiting}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._on_interrupt = None
            waiting.cancel()
        if not reading.done():
            reading.cancel()
            self._screen.end_line()
            return None
        line = reading.result()
        self._screen.line_typed()
        return line or None

    async def _ask(self, content: str) -> None:
        stream = self._client.chat(content, self._conversation_id, model=self._model)
        stopping: list[asyncio.Task[None]] = []
        self._on_interrupt = lambda: self._stop(stream, stopping)
        if self._interrupt_pending:  # Ctrl-C right as the question was sent
            self._interrupt_pending = False
            self._stop(stream, stopping)
        try:
            restarts = 0
            async for piece in stream:
                if stream.restarts != restarts:  # the answer so far was dropped
                    restarts = stream.restarts
                    self._screen.say("[restarted: the answer starts over]", style="yellow")
                self._screen.write(piece)
            turn = stream.result
        except ChatbusError as error:
            self._screen.error(f"{error.code}: {error.message}")
            return
        finally:
            self._on_interrupt = None
            self._conversation_id = stream.conversation_id or self._conversation_id
        self._screen.end_line()
        if turn.stopped:
            self._screen.say("[stopped]", style="yellow")
        elif self._screen.rich is not None:
            self._screen.say(_footer(turn), style="dim")

    def _stop(self, stream: ChatStream, stopping: list[asyncio.Task[None]]) -> None:
        if not stopping:  # one chat.stop is enough; more Ctrl-C wait for it
            stopping.append(asyncio.create_task(_stop_quietly(stream)))

    async def _command(self, text: str) -> bool:
        """Run one /command; False when the session should end."""
        name, _, argument = text.partition(" ")
        argument = argument.strip()
        try:
            if name in ("/quit", "/exit"):
                return False
            if name == "/help":
                self._screen.say(HELP)
            elif name == "/new":
                self._conversation_id = None
                self._screen.say("new conversation: your next question starts it")
            elif name == "/list":
                page = await self._client.list_conversations(limit=LIST_LIMIT)
                self._screen.conversations(page.items, self._conversation_id)
            elif name == "/switch":
                if argument:
                    await self._switch(argument)
                else:
                    self._screen.error("usage: /switch ID (an id, or its start, from /list)")
            else:
                self._screen.error(f"unknown command {text!r}; /help lists them")
        except ChatbusError as error:
            self._screen.error(f"{error.code}: {error.message}")
        return True

    async def _switch(self, prefix: str) -> bool:
        """Continue the conversation whose id starts with `prefix`."""
        matches = await self._matching(prefix.lower())
        if len(matches) != 1:
            many = f"{len(matches)} conversations start" if matches else "no conversation starts"
            self._screen.error(f"{many} with {prefix!r}")
            return False
        (found,) = matches
        self._conversation_id = found.id
        self._screen.say(f"switched to {found.title} ({found.id})")
        return True

    async def _matching(self, prefix: str) -> list[ConversationView]:
        matches: list[ConversationView] = []
        cursor: str | None = None
        while True:
            page = await self._client.list_conversations(limit=LIST_LIMIT, cursor=cursor)
            matches += [item for item in page.items if str(item.id).startswith(prefix)]
            cursor = page.next_cursor
            if cursor is None:
                return matches


async def run_chat(options: ChatOptions) -> int:
    """Connect, then chat on stdin/stdout until the user leaves; the exit code."""
    screen = Screen(sys.stdout, sys.stderr, interactive=sys.stdin.isatty())
    try:
        client = ChatbusClient(options.url, options.token)
        await client.connect()
    except (ChatbusError, ValueError) as error:
        screen.error(str(error))
        return 1
    session = ChatSession(client, options, screen)
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):  # no loop signal handlers on Windows
        loop.add_signal_handler(signal.SIGINT, session.interrupt)
    try:
        if screen.interactive:
            screen.say("chatbus chat: /help for commands, Ctrl-D to leave", style="dim")
        return await session.run(LineReader(sys.stdin.fileno()), options.conversation)
    finally:
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGINT)
        await client.close()
