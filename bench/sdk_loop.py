"""The baseline users write by hand: the official SDK's conversion call, one after another.

Used by throughput.py in its own process (so the sandbox's threads do not share its GIL)::

    python bench/sdk_loop.py --sdk nexmo --base-url https://127.0.0.1:PORT --ca cert.pem \
        --ids ids.txt --timestamp "2024-01-01 12:00:00"

Prints one JSON line: {"sdk", "version", "seconds", "calls", "errors"}. Only the HTTP calls are
timed: a hand-written loop would also read and update its rows, so this baseline is generous.

- ``nexmo`` (2.5.2, the last of the old SDK): ``Client.submit_sms_conversion``. Its host setter
  refuses a port, so the loop sets the private attribute; ``delivered`` is passed as the
  string ``"true"`` (the SDK would send a bool as ``True``).
- ``vonage`` (v4): ``client.sms.submit_sms_conversion``. It authenticates with an HTTP Basic
  header and sends ``delivered=True``, so the sandbox, which follows the API reference
  (``api_key``/``api_secret`` in the body, ``delivered`` ``true``/``false``), answers 401:
  its loop times the same round trips but reports nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any


def nexmo_loop(base_url: str, ids: list[str], timestamp: str) -> tuple[str, Counter[str]]:
    import nexmo  # type: ignore[import-untyped]

    client = nexmo.Client(key="sandbox-key", secret="sandbox-secret")
    client._Client__api_host = base_url.split("://", 1)[1]  # its setter refuses host:port
    errors: Counter[str] = Counter()
    for message_id in ids:
        try:
            client.submit_sms_conversion(message_id, delivered="true", timestamp=timestamp)
        except Exception as exc:  # what a hand-written loop has to do
            errors[type(exc).__name__] += 1
    from importlib.metadata import version as dist_version

    return dist_version("nexmo"), errors  # nexmo.__version__ still says 2.4.0


def vonage_loop(base_url: str, ids: list[str], timestamp: str) -> tuple[str, Counter[str]]:
    from importlib.metadata import version as dist_version

    from vonage import Auth, HttpClientOptions, Vonage

    host = base_url.split("://", 1)[1]
    client = Vonage(
        Auth(api_key="sandbox-key", api_secret="sandbox-secret"),
        HttpClientOptions(api_host=host, rest_host=host),
    )
    when = datetime.strptime(timestamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    errors: Counter[str] = Counter()
    for message_id in ids:
        try:
            client.sms.submit_sms_conversion(message_id, delivered=True, timestamp=when)
        except Exception as exc:
            errors[type(exc).__name__] += 1
    return dist_version("vonage"), errors


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sdk", choices=("nexmo", "vonage"), required=True)
    p.add_argument("--base-url", required=True)
    p.add_argument("--ca", required=True, help="PEM bundle to trust (the sandbox's certificate)")
    p.add_argument("--ids", required=True, help="file with one message id per line")
    p.add_argument("--timestamp", required=True)
    args = p.parse_args()
    # Both SDKs use plain requests sessions, which honour the environment's CA bundle.
    os.environ["REQUESTS_CA_BUNDLE"] = args.ca
    with open(args.ids) as f:
        ids = [line.strip() for line in f if line.strip()]
    loop = nexmo_loop if args.sdk == "nexmo" else vonage_loop
    start = time.perf_counter()
    version, errors = loop(args.base_url, ids, args.timestamp)
    seconds = time.perf_counter() - start
    result: dict[str, Any] = {
        "sdk": args.sdk,
        "version": version,
        "seconds": seconds,
        "calls": len(ids),
        "errors": dict(errors),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
