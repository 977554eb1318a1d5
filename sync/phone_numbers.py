"""Phone numbers as a PBX wants them, whatever the directory or address book wrote."""

from __future__ import annotations

import re
import unicodedata

_EXTENSION_SUFFIX = re.compile(r"(?i)\s*(?:x|ext\.?|extension|#|;|,).*$")


def normalize_phone(raw: str | None) -> str:
    """Reduce a directory phone number to what a PBX dials: '+', then digits.

    Directory numbers come in every format ('+1 (555) 010-0199 x12', '+49 (0)30 1234');
    an extension suffix is dropped, as is the '(0)' trunk prefix written after a country
    code. Digits of any script become ASCII digits. Fewer than three digits is not a phone
    number and yields ''.
    """
    if not raw:
        return ""
    text = _EXTENSION_SUFFIX.sub("", raw.strip())
    if text.startswith("+"):
        text = text.replace("(0)", "")
    # Every script's decimal digits count (٠١٢, ０１２ …), each written as the ASCII digit a PBX dials.
    digits = "".join(str(unicodedata.decimal(char)) for char in text if char.isdecimal())
    if len(digits) < 3:
        return ""
    return f"+{digits}" if text.startswith("+") else digits
