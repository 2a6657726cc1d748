"""The sandbox's command line, ``python -m django_nexmo_conversion.sandbox``: one parser with
the subcommands ``serve`` (the default), ``post-inbound`` and ``post-receipt``.

``serve`` runs the Conversion API sandbox in the foreground. It prints the base URL once it
listens (``--port 0`` picks a free port and prints the real one), then one line per request:
method, path, message id and the answer. ``post-inbound`` / ``post-receipt`` post a sample
Vonage webhook to a URL and print one line. Secrets (``api_secret``, ``sig``, the signature
secret) are never printed.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from ..transport.signing import LEGACY_METHOD, SIGNATURE_METHODS
from .rules import DEFAULT_API_KEY, DEFAULT_API_SECRET, AccountSpec
from .sender import (
    DEFAULT_HANDSET,
    DEFAULT_VIRTUAL_NUMBER,
    RECEIPT_STATUSES,
    WEBHOOK_FORMATS,
    WebhookSender,
)
from .server import ReceivedRequest, Sandbox

__all__ = ["COMMANDS", "PROG", "build_parser", "format_request", "main"]

PROG = "python -m django_nexmo_conversion.sandbox"
COMMANDS = ("serve", "post-inbound", "post-receipt")
_MAX_ID_CHARS = 80


# --------------------------------------------------------------------------- the parser


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


def _key_status(text: str) -> tuple[str, int]:
    key, equals, status = text.rpartition("=")
    if not equals or not key or not status.isdigit() or not 100 <= int(status) <= 599:
        raise argparse.ArgumentTypeError(f"expected API_KEY=STATUS (e.g. twofa=401), not {text}")
    return key, int(status)


def _add_serve_options(serve: argparse.ArgumentParser) -> None:
    add = serve.add_argument
    add("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    add("--port", type=int, default=8787, help="port; 0 picks a free one (default: %(default)s)")
    add("--latency", type=_seconds, default=0.0, help="seconds to wait before each answer")
    add("--api-key", default=DEFAULT_API_KEY, help="the account's key (default: %(default)s)")
    add("--api-secret", default=DEFAULT_API_SECRET, help="the account's secret")
    add("--signature-secret", default=None, help="accept requests signed with this secret")
    add("--signature-method", choices=SIGNATURE_METHODS, default=LEGACY_METHOD)
    add("--disable-conversions", action="store_true", help="answer 402 for this account")
    add(
        "--html-402",
        action="store_true",
        help="answer 402 as Jetty's HTML page 'Bad Account Credentials' instead of JSON",
    )
    add("--error-rate", type=_rate, default=0.0, help="share of requests answered 500/503")
    add("--throttle-rate", type=_rate, default=0.0, help="share of requests answered 429")
    add("--retry-after", type=int, default=1, help="Retry-After seconds sent with 429")
    add("--drop-rate", type=_rate, default=0.0, help="share of connections closed unanswered")
    add("--hang-rate", type=_rate, default=0.0, help="share of requests left hanging")
    add("--hang-seconds", type=_seconds, default=30.0, help="how long a hanging request hangs")
    add("--seed", type=int, default=None, help="seed for the injected faults")
    add(
        "--signature-max-age",
        type=_seconds,
        default=None,
        help="refuse (401) signed requests whose timestamp is further than this from now",
    )
    add(
        "--key-status",
        type=_key_status,
        action="append",
        default=[],
        metavar="API_KEY=STATUS",
        help="answer every request with this key with STATUS (repeatable), e.g. twofa=401",
    )
    add("--certfile", default=None, help="PEM certificate: serve HTTPS")
    add("--keyfile", default=None, help="PEM private key for --certfile")
    add("--quiet", action="store_true", help="do not print a line per request")


def _add_webhook_options(sub: argparse.ArgumentParser) -> None:
    add = sub.add_argument
    add("--url", required=True, help="the webhook URL, e.g. http://127.0.0.1:8000/nexmo/...")
    add("--api-key", default=DEFAULT_API_KEY, help="the account (default: %(default)s)")
    add("--signature-secret", default=None, help="sign the webhook with this secret")
    add("--signature-method", choices=SIGNATURE_METHODS, default=LEGACY_METHOD)
    add("--format", dest="webhook_format", choices=WEBHOOK_FORMATS, default="POST")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; :func:`main` supplies ``serve`` when no subcommand is given."""
    return _build_parsers()[0]


def _build_parsers() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The whole command line, and the parser of its ``serve`` subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="The Nexmo Conversion API sandbox, and sample Vonage webhooks to post.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        # Plain PROG, not "PROG serve": serve is the default, so its usage and errors read as
        # they always have for `python -m django_nexmo_conversion.sandbox --port 0`.
        prog=PROG,
        help="run the Conversion API sandbox (the default)",
        description="A local HTTP server that behaves like the Nexmo Conversion API.",
        epilog="Also: `post-inbound --url URL --from NUMBER --text YES` and `post-receipt --url "
        "URL --message-id ID --status failed` post a sample Vonage webhook to URL "
        "(add --help for their options).",
    )
    _add_serve_options(serve)

    inbound = commands.add_parser("post-inbound", help="an inbound SMS (a reply)")
    _add_webhook_options(inbound)
    inbound.add_argument("--from", dest="msisdn", default=DEFAULT_HANDSET, help="sender number")
    inbound.add_argument("--to", default=DEFAULT_VIRTUAL_NUMBER, help="our virtual number")
    inbound.add_argument("--text", default="YES")
    inbound.add_argument("--message-id", default=None, help="default: a random id")

    receipt = commands.add_parser("post-receipt", help="a delivery receipt")
    _add_webhook_options(receipt)
    receipt.add_argument("--message-id", required=True, help="the id of the message we sent")
    receipt.add_argument("--status", choices=RECEIPT_STATUSES, default="delivered")
    receipt.add_argument("--err-code", default=None, help="default: 0 if delivered, else 1")
    receipt.add_argument("--to", dest="msisdn", default=DEFAULT_HANDSET, help="handset number")
    return parser, serve


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line (``sys.argv[1:]`` unless given); returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] not in COMMANDS:
        # No subcommand means serve, so `... sandbox --port 0` (and `--help`) work as before.
        arguments.insert(0, "serve")
    parser, serve = _build_parsers()
    args, extras = parser.parse_known_args(arguments)
    if extras:
        # argparse's own message, but for serve with serve's usage (all its options), which is
        # what a mistyped `--port 0 --quite` always showed.
        (serve if args.command == "serve" else parser).error(
            f"unrecognized arguments: {' '.join(extras)}"
        )
    if args.command == "serve":
        return _serve(args)
    return _post_webhook(args)


# --------------------------------------------------------------------------- serve


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
        signature_max_age=args.signature_max_age,
        key_statuses=dict(args.key_status),
        html_402=args.html_402,
        seed=args.seed,
        host=args.host,
        port=args.port,
        certfile=args.certfile,
        keyfile=args.keyfile,
        on_request=None if args.quiet else log_request,
    )


def _serve(args: argparse.Namespace) -> int:
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


# --------------------------------------------------------------------------- webhooks


def _post_webhook(args: argparse.Namespace) -> int:
    """Prints one line, never the secret or ``sig``; 0 if answered 2xx, 2 if not, 1 if unsent."""
    sender = WebhookSender(
        api_key=args.api_key,
        signature_secret=args.signature_secret,
        signature_method=args.signature_method,
        webhook_format=args.webhook_format,
    )
    try:
        if args.command == "post-inbound":
            posted = sender.inbound(
                args.url, msisdn=args.msisdn, to=args.to, text=args.text, message_id=args.message_id
            )
        else:
            posted = sender.receipt(
                args.url,
                message_id=args.message_id,
                status=args.status,
                err_code=args.err_code,
                msisdn=args.msisdn,
            )
    except (OSError, ValueError) as exc:
        print(f"sandbox: could not post to {args.url}: {exc}", file=sys.stderr)
        return 1
    signed = f"signed {sender.signature_method}" if sender.signature_secret else "unsigned"
    line = f"{posted.method} {posted.url} messageId={posted.params['messageId']} ({signed})"
    print(f"{line} -> {posted.status} {posted.body.strip()}".rstrip(), flush=True)
    return 0 if posted.ok else 2
