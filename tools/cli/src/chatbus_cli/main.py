"""The `chatbus` command: dev, token, keys, chat, tail and usage."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from chatbus_client import ChatbusError

from .chat import ChatOptions, dev_token, run_chat
from .dev import DevOptions, Provider, run_dev
from .dlq import (
    UnknownDeadLetterError,
    list_dead_letters,
    purge_dead_letters,
    replay_dead_letters,
)
from .keys import create_key, list_keys, revoke_key
from .output import print_json, print_table
from .settings import (
    DEFAULT_DATA_DIR,
    DEFAULT_NATS_PORT,
    DEFAULT_POSTGRES_PORT,
    CliSettings,
    DevSettings,
)
from .tail import event_subject_matches, tail_events
from .tokens import MissingSecretError, mint_token, read_secret
from .usage import fetch_usage, print_usage

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

NatsUrl = Annotated[
    str | None,
    typer.Option("--nats-url", help="Default: CHATBUS_NATS_URL, else nats://127.0.0.1:4222."),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Plain JSON instead of a table.")]


DEFAULT_GATEWAY_URL = "http://127.0.0.1:8000"
GatewayUrl = Annotated[
    str, typer.Option("--url", envvar="CHATBUS_GATEWAY_URL", help="The gateway's base URL.")
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="CHATBUS_TOKEN",
        help="A JWT or API key. Default: a dev token for --user, as `chatbus token` mints.",
        show_default=False,
    ),
]
DevUser = Annotated[str, typer.Option("--user", envvar="USER", help="Whom the dev token is for.")]


def _nats_url(option: str | None) -> str:
    return option or DevSettings().nats_url or f"nats://127.0.0.1:{DEFAULT_NATS_PORT}"


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
    nats_url: NatsUrl = None,
) -> None:
    """Print events from the bus as JSON lines (one per event, with its `subject`)."""
    if not event_subject_matches(subject):
        raise typer.BadParameter("names no event subject (see docs/architecture.md)")
    url = _nats_url(nats_url)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a tail ends
        asyncio.run(tail_events(url, subject, sys.stdout, from_start=from_start, limit=limit))


@app.command()
def chat(
    url: GatewayUrl = DEFAULT_GATEWAY_URL,
    token: Token = None,
    user: DevUser = "dev",
    conversation: Annotated[
        str | None,
        typer.Option("--conversation", help="Continue this conversation (its id or a prefix)."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="The model of every turn (a /v1/models id).")
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Chat in the terminal: each line is a question, the answer streams back; /help for more."""
    try:
        bearer = token or dev_token(user, data_dir)
    except MissingSecretError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    options = ChatOptions(url=url, token=bearer, conversation=conversation, model=model)
    raise typer.Exit(asyncio.run(run_chat(options)))


@app.command()
def usage(
    url: GatewayUrl = DEFAULT_GATEWAY_URL,
    token: Token = None,
    user: DevUser = "dev",
    start: Annotated[
        str | None,
        typer.Option("--from", help="ISO date or datetime (default: this month's first day)."),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="ISO date or datetime (default: now).")
    ] = None,
    group_by: Annotated[
        str | None, typer.Option("--group-by", help="day, model or conversation.")
    ] = None,
    as_json: JsonOutput = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Your calls, tokens and cost (GET /v1/usage), as a table or --json."""
    try:
        bearer = token or dev_token(user, data_dir)
        summary = asyncio.run(fetch_usage(url, bearer, start=start, end=end, group_by=group_by))
    except (MissingSecretError, ChatbusError) as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    print_usage(summary, as_json=as_json)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def bench(ctx: typer.Context) -> None:
    """Benchmark chatbus against the provider called directly; `chatbus bench --help` for more."""
    # Imported here: the benchmark and its load clients are needed by this command only.
    try:
        from chatbus_bench.main import main as run_bench
    except ModuleNotFoundError:
        raise typer.BadParameter(
            "the benchmark is not installed: run it from a chatbus checkout (`make bench`)"
        ) from None

    raise typer.Exit(run_bench(ctx.args))


keys_app = typer.Typer(help="Create, list and revoke API keys (cb-…).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Option("--user", help="The user the key acts as.")],
    name: Annotated[str, typer.Option("--name", help="A label, e.g. where it is used.")] = "",
    role: Annotated[str, typer.Option("--role", help="The role the key carries.")] = "user",
    nats_url: NatsUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """Create a key and print it once: only its hash is stored."""
    key, record = asyncio.run(create_key(_nats_url(nats_url), user, role=role, name=name))
    if as_json:
        print_json({"key": key, **record.model_dump(mode="json", exclude={"secret_sha256"})})
        return
    typer.echo(key)
    typer.secho(
        f"key id {record.key_id} for {user}: shown once, store it now", err=True, fg="yellow"
    )


@keys_app.command("list")
def keys_list(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's keys.")] = None,
    nats_url: NatsUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """List live keys (never their secrets)."""
    records = asyncio.run(list_keys(_nats_url(nats_url), user))
    rows = [record.model_dump(mode="json", exclude={"secret_sha256"}) for record in records]
    if as_json:
        print_json(rows)
    else:
        print_table(rows, ["key_id", "user_id", "role", "name", "created_at"], title="API keys")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id `keys list` shows.")],
    nats_url: NatsUrl = None,
) -> None:
    """Revoke a key: the gateway refuses it from the next request on."""
    if not asyncio.run(revoke_key(_nats_url(nats_url), key_id)):
        typer.secho(f"error: no key {key_id}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


dlq_app = typer.Typer(
    help="Dead letters: messages a consumer gave up on (DEAD_LETTERS stream).",
    no_args_is_help=True,
)
app.add_typer(dlq_app, name="dlq")

DlqConsumer = Annotated[
    str | None, typer.Option("--consumer", help="Only this consumer's dead letters.")
]
DlqSeqs = Annotated[
    list[int] | None,
    typer.Argument(
        metavar="SEQ...", help="Sequences in DEAD_LETTERS, as `dlq list` shows.", show_default=False
    ),
]
DlqAll = Annotated[bool, typer.Option("--all", help="Every dead letter (of --consumer).")]


def _dlq_choice(seqs: list[int] | None, every: bool) -> list[int] | None:
    """The sequences a replay or purge names; None: all of them."""
    if bool(seqs) == every:
        raise typer.BadParameter("name the sequences or give --all (one of the two)")
    return None if every else seqs


@dlq_app.command("list")
def dlq_list(
    consumer: DlqConsumer = None, nats_url: NatsUrl = None, as_json: JsonOutput = False
) -> None:
    """Dead letters, oldest first: seq, time, consumer, subject, reason (--json: everything)."""
    entries = asyncio.run(list_dead_letters(_nats_url(nats_url), consumer))
    if as_json:
        print_json([entry.row() for entry in entries])
    else:
        rows = [entry.summary() for entry in entries]
        print_table(rows, ["seq", "time", "consumer", "subject", "reason"], title="Dead letters")


@dlq_app.command("replay")
def dlq_replay(
    seqs: DlqSeqs = None,
    every: DlqAll = False,
    consumer: DlqConsumer = None,
    nats_url: NatsUrl = None,
) -> None:
    """Publish dead letters again to their original subject, then remove them.

    Payload and headers are the original's: the consumer processes them once more.
    """
    chosen = _dlq_choice(seqs, every)
    try:
        replayed = asyncio.run(replay_dead_letters(_nats_url(nats_url), chosen, consumer))
    except UnknownDeadLetterError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    for entry in replayed:
        note = " (duplicate: replayed before)" if entry.duplicate else ""
        typer.echo(
            f"replayed {entry.seq} to {entry.subject} ({entry.stream} #{entry.stream_seq}){note}"
        )


@dlq_app.command("purge")
def dlq_purge(
    seqs: DlqSeqs = None,
    every: DlqAll = False,
    consumer: DlqConsumer = None,
    nats_url: NatsUrl = None,
) -> None:
    """Delete dead letters for good."""
    chosen = _dlq_choice(seqs, every)
    try:
        purged = asyncio.run(purge_dead_letters(_nats_url(nats_url), chosen, consumer))
    except UnknownDeadLetterError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    typer.echo(f"purged {len(purged)} dead letter(s)")


if __name__ == "__main__":
    app()
