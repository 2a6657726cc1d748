"""``python -m django_nexmo_conversion.sandbox``: run the Conversion API sandbox in the foreground.

Prints the base URL once it listens (``--port 0`` picks a free port and prints the real one),
then one line per request: method, path, message id and the answer. Secrets (``api_secret``,
``sig``, the signature secret) are never printed.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from ..signing import LEGACY_METHOD, SIGNATURE_METHODS
from .rules import DEFAULT_API_KEY, DEFAULT_API_SECRET, AccountSpec
from .sender import COMMANDS as WEBHOOK_COMMANDS
from .sender import main as post_webhook
from .server import ReceivedRequest, Sandbox

_MAX_ID_CHARS = 80


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {text}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m django_nexmo_conversion.sandbox",
        description="A local HTTP server that behaves like the Nexmo Conversion API.",
        epilog="Also: `post-inbound --url URL --from NUMBER --text YES` and `post-receipt --url "
        "URL --message-id ID --status failed` post a sample Vonage webhook to URL "
        "(add --help for their options).",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    add("--port", type=int, default=8787, help="port; 0 picks a free one (default: %(default)s)")
    add("--latency", type=_seconds, default=0.0, help="seconds to wait before each answer")
    add("--api-key", default=DEFAULT_API_KEY, help="the account's key (default: %(default)s)")
    add("--api-secret", default=DEFAULT_API_SECRET, help="the account's secret")
    add("--signature-secret", default=None, help="accept requests signed with this secret")
    add("--signature-method", choices=SIGNATURE_METHODS, default=LEGACY_METHOD)
    add("--disable-conversions", action="store_true", help="answer 402 for this account")
    add("--error-rate", type=_rate, default=0.0, help="share of requests answered 500/503")
    add("--throttle-rate", type=_rate, default=0.0, help="share of requests answered 429")
    add("--retry-after", type=int, default=1, help="Retry-After seconds sent with 429")
    add("--drop-rate", type=_rate, default=0.0, help="share of connections closed unanswered")
    add("--hang-rate", type=_rate, default=0.0, help="share of requests left hanging")
    add("--hang-seconds", type=_seconds, default=30.0, help="how long a hanging request hangs")
    add("--seed", type=int, default=None, help="seed for the injected faults")
    add("--certfile", default=None, help="PEM certificate: serve HTTPS")
    add("--keyfile", default=None, help="PEM private key for --certfile")
    add("--quiet", action="store_true", help="do not print a line per request")
    return parser


def _printable(text: str) -> str:
    # A message id is client-controlled: keep control characters out of the terminal / log.
    cleaned = "".join(char if char.isprintable() else "?" for char in text)
    return cleaned if len(cleaned) <= _MAX_ID_CHARS else cleaned[:_MAX_ID_CHARS] + "..."


def format_request(request: ReceivedRequest) -> str:
    """One log line for a request; built from an allow-list of fields, so never a secret."""
    outcome = str(request.status) if request.status is not None else (request.fault or "-")
    message_id = _printable(request.message_id) if request.message_id is not None else "-"
    return f"{request.method} {request.path} message-id={message_id} -> {outcome}"


def _sandbox_from(args: argparse.Namespace) -> Sandbox:
    account = AccountSpec(
        api_secret=args.api_secret,
        signature_secret=args.signature_secret,
        signature_method=args.signature_method,
        conversions_enabled=not args.disable_conversions,
    )
    print_lock = threading.Lock()

    def log_request(request: ReceivedRequest) -> None:
        with print_lock:  # handler threads print concurrently; keep lines whole
            print(format_request(request), flush=True)

    return Sandbox(
        accounts={args.api_key: account},
        latency=args.latency,
        error_rate=args.error_rate,
        throttle_rate=args.throttle_rate,
        drop_rate=args.drop_rate,
        hang_rate=args.hang_rate,
        hang_seconds=args.hang_seconds,
        retry_after=args.retry_after,
        seed=args.seed,
        host=args.host,
        port=args.port,
        certfile=args.certfile,
        keyfile=args.keyfile,
        on_request=None if args.quiet else log_request,
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in WEBHOOK_COMMANDS:
        return post_webhook(arguments)  # post-inbound / post-receipt: see sandbox/sender.py
    args = build_parser().parse_args(arguments)
    sandbox = _sandbox_from(args)
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    # Ctrl-C and SIGTERM both end the wait below, so the server always shuts down the same way.
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        sandbox.start()
    except (OSError, ValueError) as exc:
        # OSError: port in use / unreadable cert; neither message contains a secret.
        print(f"sandbox: cannot start on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"Nexmo Conversion API sandbox listening on {sandbox.base_url}", flush=True)
        stop_requested.wait()
    finally:
        sandbox.stop()
    print("Sandbox stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
