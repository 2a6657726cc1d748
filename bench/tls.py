"""The http backend, trusting the benchmark's self-signed certificate.

The app's client ignores ``REQUESTS_CA_BUNDLE`` on purpose (``trust_env = False``: proxies
and ``.netrc`` from the environment must not redirect credentials), so the benchmark says
which CA to trust the way a project would: a backend subclass (``BACKEND`` is a dotted path).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from django_nexmo_conversion.backends.http import HttpBackend
from django_nexmo_conversion.transport.client import Client

if TYPE_CHECKING:
    from django_nexmo_conversion.conf import ConversionSettings

#: Environment variable holding the PEM file to trust (the bench's self-signed certificate).
CA_ENV = "NEXMO_BENCH_CA_BUNDLE"


class TrustingHttpBackend(HttpBackend):
    def __init__(self, *, settings: ConversionSettings) -> None:
        super().__init__(settings=settings)
        self.client = Client(
            base_url=settings.base_url, timeout=settings.timeout, verify=os.environ[CA_ENV]
        )
