"""Settings of the usage service."""

from __future__ import annotations

from chatbus_runtime.settings import ServiceSettings


class UsageSettings(ServiceSettings):
    """`CHATBUS_*` variables read by the usage service."""

    migrate_on_start: bool = True
