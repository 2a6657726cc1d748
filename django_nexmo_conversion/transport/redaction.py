"""Taking secrets out of text that came back from the network, in whatever encoding it holds
them.

A proxy, gateway or API error page may echo the request back: form-encoded (``%2F`` or
``%2f``, ``+`` for a space, percent-encoded twice), JSON-escaped (``\\/``, ``\\"``,
``\\u00e9``), HTML-escaped (``&#47;``, ``&quot;``), or base64 (an echoed ``Authorization``
header). Matching the literal secret misses all of those, and a decoder further on (the JSON
of an error answer) turns them back into the secret. So each character of a secret is matched
in any of its encodings, mixed freely, case-insensitively: over-redacting a look-alike is
harmless; leaking a secret is not.

Standard library only, like ``wire``: the client runs it in worker threads.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Iterable

#: What a secret is replaced by.
MASK = "***"
#: JSON's two-character escapes, and HTML's named entities, for the characters that have one.
_JSON_SHORT = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "\b": "b",
    "\f": "f",
    "\n": "n",
    "\r": "r",
    "\t": "t",
}
_HTML_NAMED = {"&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "apos", "/": "sol"}


def _utf16_units(char: str) -> list[int]:
    data = char.encode("utf-16-be")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def _forms(char: str) -> str:
    """A regex matching ``char`` in any encoding named in the module's docstring."""
    code = ord(char)
    forms = [re.escape(char)]
    # Percent-encoding of each UTF-8 byte, possibly encoded again (%25 for the %).
    forms.append("".join(f"%(?:25)*{byte:02x}" for byte in char.encode("utf-8")))
    if char == " ":
        forms.append(r"\+")
    # JSON \uXXXX (surrogate pairs beyond the BMP), JSON short escapes, Python \xHH/\UXXXXXXXX.
    forms.append("".join(rf"\\u{unit:04x}" for unit in _utf16_units(char)))
    if char in _JSON_SHORT:
        forms.append(re.escape("\\" + _JSON_SHORT[char]))
    if code < 0x100:
        forms.append(rf"\\x{code:02x}")
    forms.append(rf"\\U{code:08x}")
    # HTML: decimal and hex character references (leading zeros allowed), named entities.
    forms.append(rf"&#0*{code};?")
    forms.append(rf"&#x0*{code:x};?")
    if char in _HTML_NAMED:
        forms.append(rf"&{_HTML_NAMED[char]};")
    return "(?:" + "|".join(forms) + ")"


def _base64_forms(value: str) -> list[str]:
    raw = value.encode("utf-8")
    encoded = {
        base64.b64encode(raw).decode("ascii").rstrip("="),
        base64.urlsafe_b64encode(raw).decode("ascii").rstrip("="),
    }
    # Only long enough ones: a two-character base64 string would mask ordinary words.
    return [re.escape(text) for text in encoded if len(text) >= 8]


@functools.lru_cache(maxsize=64)
def _pattern(secrets: tuple[str, ...], prefixes: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = []
    for secret in secrets:
        alternatives.append("".join(_forms(char) for char in secret))
        alternatives.extend(_base64_forms(secret))
        # Basic auth: base64 of "key:secret", whose secret part alone is not aligned base64.
        for prefix in prefixes:
            alternatives.extend(_base64_forms(f"{prefix}:{secret}"))
    # Longest first, so a base64 form is not cut short by a shorter overlapping match.
    alternatives.sort(key=len, reverse=True)
    return re.compile("|".join(alternatives), re.IGNORECASE)


def redact(text: str, secrets: Iterable[str | None], *, prefixes: Iterable[str] = ()) -> str:
    """``text`` with every encoding of each of ``secrets`` replaced by ``***``.

    ``prefixes`` are API keys: base64 of ``"key:secret"`` (HTTP Basic auth) is masked too.
    """
    chosen = tuple(sorted({str(secret) for secret in secrets if secret}))
    if not chosen or not text:
        return text
    return _pattern(chosen, tuple(sorted(set(prefixes)))).sub(MASK, text)


def margin(secrets: Iterable[str | None]) -> int:
    """How many characters past a cut to redact first, so a secret straddling the cut is
    masked whole rather than left half in: the longest any encoded secret can be."""
    longest = max((len(str(secret)) for secret in secrets if secret), default=0)
    # %25%25XX per UTF-8 byte (4 bytes a character) is the longest form; 32 covers it.
    return longest * 32
