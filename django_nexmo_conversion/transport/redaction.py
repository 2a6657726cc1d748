"""Taking secrets out of text that came back from the network, in whatever encoding it holds
them.

A proxy, gateway or API error page may echo the request back: form-encoded (``%2F`` or
``%2f``, ``+`` for a space, percent-encoded twice), JSON-escaped (``\\/``, ``\\"``,
``\\u00e9``), HTML-escaped (``&#47;``, ``&quot;``), base64 or URL-safe base64 at any offset
(an echoed ``Authorization`` header, a whole form body), hex, quoted-printable, or bytes
misread (UTF-8 as Latin-1 or cp1252, UTF-16 a byte a character). Matching the literal secret
misses all of those, and a decoder further on (the JSON of an error answer) turns them back
into the secret. So each character of a secret is matched in any of its encodings, mixed
freely, case-insensitively: over-redacting a look-alike is harmless; leaking a secret is not.

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
#: Between two encoded bytes of a secret: a quoted-printable soft line break, if any.
_SOFT_BREAK = r"(?:=\r?\n)?"
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
    utf8 = char.encode("utf-8")
    # Hex of the UTF-8 bytes (a hex dump of the request; of "key:secret" too, byte-aligned).
    forms.append(utf8.hex())
    # Quoted-printable: =XX per byte, a soft line break possibly between any two of them.
    forms.append(_SOFT_BREAK.join(f"={byte:02x}" for byte in utf8))
    # Misread bytes: UTF-8 read as Latin-1 or cp1252 (é as Ã©), UTF-16 read a byte a char.
    misreads = {
        utf8.decode("latin-1"),
        utf8.decode("cp1252", "replace"),
        char.encode("utf-16-le").decode("latin-1"),
        char.encode("utf-16-be").decode("latin-1"),
    }
    forms.extend(re.escape(text) for text in sorted(misreads) if text != char)
    return "(?:" + "|".join(forms) + ")"


def _base64_forms(value: str) -> list[str]:
    """``value``'s base64 (standard and URL-safe) at each of the three byte offsets it may
    start at inside a longer encoded text (a whole form body, ``key:secret``): only the
    characters that depend on ``value``'s bytes alone."""
    raw = value.encode("utf-8")
    encoded = set()
    for offset in range(3):
        first = -(-offset * 8 // 6)  # the first character made of value's bits only
        last = (offset + len(raw)) * 8 // 6  # past the last one
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * offset + raw).decode("ascii")
            encoded.add(text[first:last] if offset else text.rstrip("="))
    # Only long enough ones: a two-character base64 string would mask ordinary words (six
    # characters are 36 bits of the secret: what a 6-byte secret leaves at an offset).
    return [re.escape(text) for text in encoded if len(text) >= 6]


@functools.lru_cache(maxsize=64)
def _pattern(secrets: tuple[str, ...], prefixes: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = []
    for secret in secrets:
        alternatives.append(_SOFT_BREAK.join(_forms(char) for char in secret))
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
