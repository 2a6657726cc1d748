"""Signals sent by the app. Every one has ``sender=Conversion`` and ``conversion=<instance>``.

- ``conversion_marked``: a new conversion was stored (sent inside the caller's transaction).
- ``conversion_reported``: Nexmo answered 200.
- ``conversion_failed``: the conversion will not be retried (a 4xx parameter error, or
  ``MAX_ATTEMPTS`` used up); also carries ``status_code`` and ``error``.
- ``conversion_rate_low``: a new low-conversion alert (``sender=ConversionAlert``,
  ``alert=<insights.Alert>``), sent once when it is raised, not on every look.
- ``send_blocked``: the send guard refused a send (``sender=guard.Decision``,
  ``decision=``, ``to_country=``, ``prefix=``); not sent in monitor mode.
"""

from django.dispatch import Signal

conversion_marked = Signal()
conversion_reported = Signal()
conversion_failed = Signal()
conversion_rate_low = Signal()
send_blocked = Signal()
