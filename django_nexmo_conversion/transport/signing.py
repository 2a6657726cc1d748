"""The Nexmo request signature, shared by outbound reports, the sandbox and inbound webhooks.

The algorithm is the one Vonage's SDKs implement: take every parameter except ``sig``, sorted
by name, append ``&name=value`` for each (``&`` and ``=`` inside values become ``_``), then
either append the secret and take md5 (the legacy ``md5hash`` method) or key an HMAC with the
secret. The digest is lower-case hex.

Names are not masked (Vonage's SDKs mask values only), so a name holding ``&`` or ``=`` could
pass for two parameters, or two for one, under the same signature: such names are refused.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

#: Method name -> hashlib constructor for the HMAC methods; ``md5hash`` is the odd one out.
HMAC_METHODS = {
    "md5": hashlib.md5,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}
LEGACY_METHOD = "md5hash"
SIGNATURE_METHODS = (LEGACY_METHOD, *HMAC_METHODS)
#: What separates parameters in the signed string; a name holding one is ambiguous.
_SEPARATORS = ("&", "=")


class UnsignableParameters(ValueError):
    """A parameter name holds ``&`` or ``=``: its signature would be ambiguous."""


def is_signable_name(name: str) -> bool:
    """Whether ``name`` can be signed unambiguously (it holds neither ``&`` nor ``=``)."""
    return not any(separator in name for separator in _SEPARATORS)


def signing_payload(params: Mapping[str, object]) -> bytes:
    """Return the bytes that are hashed: the sorted ``&name=value`` string, ``sig`` left out.

    :class:`UnsignableParameters` when a name holds ``&`` or ``=``.
    """
    parts = []
    for name in sorted(params):
        if name == "sig":
            continue
        if not is_signable_name(name):
            # The name itself stays out of the message: it could be anything a client sent.
            raise UnsignableParameters("A parameter name contains '&' or '=': cannot sign it.")
        value = str(params[name]).replace("&", "_").replace("=", "_")
        parts.append(f"&{name}={value}")
    return "".join(parts).encode("utf-8")


def sign(params: Mapping[str, object], *, secret: str, method: str = LEGACY_METHOD) -> str:
    """Return the ``sig`` value for ``params`` with ``secret`` under ``method``."""
    payload = signing_payload(params)
    if method == LEGACY_METHOD:
        # Legacy md5hash is a plain digest of payload + secret, not an HMAC.
        return hashlib.md5(payload + secret.encode("utf-8"), usedforsecurity=False).hexdigest()
    try:
        digestmod = HMAC_METHODS[method]
    except KeyError:
        raise ValueError(
            f"Unknown signature method {method!r}; expected one of {', '.join(SIGNATURE_METHODS)}."
        ) from None
    return hmac.new(secret.encode("utf-8"), payload, digestmod).hexdigest()


def verify(params: Mapping[str, object], *, secret: str, method: str = LEGACY_METHOD) -> bool:
    """True when ``params['sig']`` is the right signature; compared in constant time."""
    given = str(params.get("sig", "")).lower()
    if not given:
        return False
    try:
        expected = sign(params, secret=secret, method=method)
    except UnsignableParameters:
        return False  # nothing ambiguous is ever valid
    # As bytes: compare_digest refuses non-ASCII text, and a forged sig may well be that.
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("ascii"))
