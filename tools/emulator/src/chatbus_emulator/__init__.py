"""Provider emulator: the OpenAI and Anthropic chat wire formats, with fault injection.

Start it in-process with ``run_emulator`` or from the shell with ``chatbus-emulator``.
"""

from chatbus_emulator.app import create_app
from chatbus_emulator.records import RequestRecord
from chatbus_emulator.script import ScriptedResponse, ScriptedToolCall
from chatbus_emulator.server import run_emulator
from chatbus_emulator.state import EmulatorState

__all__ = [
    "EmulatorState",
    "RequestRecord",
    "ScriptedResponse",
    "ScriptedToolCall",
    "create_app",
    "run_emulator",
]
