"""Where the integration tests get NATS and Postgres from.

Default: real nats-server and PostgreSQL processes from the PyPI wheels, on free
ports in temporary directories. With `CHATBUS_TEST_INFRA=containers` (a machine
with Docker), the same fixtures use testcontainers instead.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Infra:
    """URLs of the NATS server and of a fresh database, plus a way to run SQL."""

    nats_url: str
    database_url: str


def _mode() -> str:
    return os.environ.get("CHATBUS_TEST_INFRA", "wheels")


@contextlib.contextmanager
def _wheels(tmp: Path) -> Iterator[Infra]:
    from chatbus_cli.embedded import EmbeddedNats, EmbeddedPostgres

    with EmbeddedNats(tmp / "nats") as nats, EmbeddedPostgres(tmp / "pg", fsync=False) as pg:
        database = f"chatbus_test_{uuid.uuid4().hex[:8]}"
        pg.ensure_database(database)
        yield Infra(nats_url=nats.url, database_url=pg.url(database))


@contextlib.contextmanager
def _containers() -> Iterator[Infra]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs
    from testcontainers.postgres import PostgresContainer

    nats = DockerContainer("nats:2.11").with_command("-js").with_exposed_ports(4222)
    postgres = PostgresContainer("pgvector/pgvector:pg17", driver="asyncpg")
    with nats, postgres:
        wait_for_logs(nats, "Server is ready")
        nats_url = f"nats://{nats.get_container_host_ip()}:{nats.get_exposed_port(4222)}"
        yield Infra(nats_url=nats_url, database_url=postgres.get_connection_url())


@contextlib.contextmanager
def provide_infra(tmp: Path) -> Iterator[Infra]:
    """NATS + Postgres for one test session, torn down afterwards."""
    if _mode() == "containers":
        with _containers() as infra:
            yield infra
    else:
        with _wheels(tmp) as infra:
            yield infra
