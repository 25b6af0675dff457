"""``python -m chatbus_emulator``."""

from chatbus_emulator.main import run

run()
