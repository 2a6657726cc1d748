"""A stand-in for the Vonage SMS API (``POST https://rest.nexmo.com/sms/json``).

It sends nothing: it answers exactly what the real API answers for an accepted one-part SMS,
so the demo can hand that answer to ``record_sms_response`` as a real project would.
"""

from __future__ import annotations

import secrets
import threading
from decimal import Decimal
from typing import Any

MESSAGE_PRICE = Decimal("0.03330000")
_balance = Decimal("10.00000000")
_balance_lock = threading.Lock()


def send_sms(*, to: str, text: str) -> dict[str, Any]:
    """Pretend to send ``text`` to ``to``; returns the SMS API's JSON answer as a dict."""
    global _balance
    with _balance_lock:  # runserver serves requests in threads
        _balance -= MESSAGE_PRICE
        balance = _balance
    return {
        "message-count": "1",
        "messages": [
            {
                "to": to,
                # Real message ids are 16 upper-case hex digits.
                "message-id": secrets.token_hex(8).upper(),
                "status": "0",
                "remaining-balance": f"{balance:.8f}",
                "message-price": f"{MESSAGE_PRICE:.8f}",
                "network": "23410",
            }
        ],
    }
