"""The `chatbus` command: `chatbus dev`, `chatbus token` and `chatbus tail`."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from .dev import DevOptions, Provider, run_dev
from .settings import (
    DEFAULT_DATA_DIR,
    DEFAULT_NATS_PORT,
    DEFAULT_POSTGRES_PORT,
    CliSettings,
    DevSettings,
)
from .tail import event_subject_matches, tail_events
from .tokens import MissingSecretError, mint_token, read_secret

app = typer.Typer(
    name="chatbus",
    help="chatbus on one machine: run the whole system, mint dev tokens.",
    no_args_is_help=True,
    add_completion=False,
    # Plain click help: it re-wraps docstring paragraphs instead of keeping their line breaks.
    rich_markup_mode=None,
    # Tracebacks must not print local variables: they hold the JWT secret.
    pretty_exceptions_show_locals=False,
)

DataDir = Annotated[
    Path,
    typer.Option("--data-dir", help="Where NATS, Postgres and the JWT secret keep their data."),
]


@app.command()
def token(
    user: Annotated[str, typer.Option("--user", help="The token's subject (the user id).")],
    ttl_hours: Annotated[
        float, typer.Option("--ttl-hours", help="Lifetime in hours (> 0).")
    ] = 24.0,
    role: Annotated[str, typer.Option("--role", help="The `role` claim.")] = "user",
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Print a dev JWT signed with CHATBUS_JWT_SECRET or the secret `chatbus dev` created."""
    if ttl_hours <= 0:
        raise typer.BadParameter("must be greater than 0", param_hint="--ttl-hours")
    try:
        secret = read_secret(CliSettings(), data_dir)
    except MissingSecretError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    typer.echo(mint_token(secret, user, role=role, ttl=timedelta(hours=ttl_hours)))


@app.command()
def dev(
    provider: Annotated[
        Provider,
        typer.Option(
            "--provider",
            help="auto: as the environment says (demo without a key); demo; emulator.",
        ),
    ] = Provider.AUTO,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    gateway_port: Annotated[
        int | None,
        typer.Option(
            "--gateway-port",
            min=1,
            max=65535,
            help="Gateway port (default: CHATBUS_GATEWAY_PORT, else 8000).",
            show_default=False,
        ),
    ] = None,
    nats_port: Annotated[int, typer.Option("--nats-port", hidden=True)] = DEFAULT_NATS_PORT,
    postgres_port: Annotated[
        int, typer.Option("--postgres-port", hidden=True)
    ] = DEFAULT_POSTGRES_PORT,
) -> None:
    """Run NATS, Postgres and the five services on this machine until Ctrl-C.

    NATS and Postgres are started embedded unless CHATBUS_NATS_URL / CHATBUS_DATABASE_URL are
    set; their data stays in the data dir between runs.
    """
    options = DevOptions(
        provider=provider,
        data_dir=data_dir,
        gateway_port=gateway_port,
        nats_port=nats_port,
        postgres_port=postgres_port,
    )
    raise typer.Exit(run_dev(options))


@app.command()
def tail(
    subject: Annotated[
        str,
        typer.Argument(help="An event subject or pattern: message.created, conversation.*, >"),
    ],
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Begin with the oldest event kept.")
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Stop after this many events.")
    ] = None,
    nats_url: Annotated[
        str | None,
        typer.Option("--nats-url", help="Default: CHATBUS_NATS_URL, else nats://127.0.0.1:4222."),
    ] = None,
) -> None:
    """Print events from the bus as JSON lines (one per event, with its `subject`)."""
    if not event_subject_matches(subject):
        raise typer.BadParameter("names no event subject (see docs/architecture.md)")
    url = nats_url or DevSettings().nats_url or f"nats://127.0.0.1:{DEFAULT_NATS_PORT}"
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a tail ends
        asyncio.run(tail_events(url, subject, sys.stdout, from_start=from_start, limit=limit))


if __name__ == "__main__":
    app()
