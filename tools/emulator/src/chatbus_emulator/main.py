"""``chatbus-emulator`` command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from uvicorn.config import LOGGING_CONFIG

from chatbus_emulator.server import base_url, bind_socket, make_server
from chatbus_emulator.state import EmulatorState


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``chatbus-emulator``."""
    parser = argparse.ArgumentParser(
        prog="chatbus-emulator",
        description="Emulate the OpenAI and Anthropic chat APIs, with fault injection.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900, help="0 picks a free port")
    parser.add_argument(
        "--reply",
        default=None,
        help='default reply text (default: "Emulated reply to: <last user message>")',
    )
    parser.add_argument("--first-token-delay-ms", type=float, default=0.0, metavar="N")
    parser.add_argument("--inter-token-delay-ms", type=float, default=0.0, metavar="N")
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
    )
    return parser


def run(argv: Sequence[str] | None = None) -> None:
    """Parse ``argv``, print the base URL, and serve until interrupted."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.first_token_delay_ms < 0 or args.inter_token_delay_ms < 0:
        parser.error("delays must be >= 0")
    state = EmulatorState(
        reply=args.reply,
        first_token_delay_ms=args.first_token_delay_ms,
        inter_token_delay_ms=args.inter_token_delay_ms,
    )
    server = make_server(
        state, handle_signals=True, log_config=LOGGING_CONFIG, log_level=args.log_level
    )
    # Bind before printing so the printed URL is already accepting connections.
    sock = bind_socket(args.host, args.port)
    print(f"chatbus-emulator listening on {base_url(sock)}", flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    run()
