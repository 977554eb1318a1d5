"""Phone numbers as a PBX dials them: the normalisation rule, data in, data out."""

from __future__ import annotations

import pytest

from sync.phone_numbers import normalize_phone


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+49 (0)30 1234567", "+49301234567"),
        ("(555) 010-0199", "5550100199"),
        ("+1.555.010.0199 ext. 7", "+15550100199"),
        ("+44 (0)20 7946 0018 Extension 204", "+442079460018"),
        ("0049 30 12345", "004930 12345".replace(" ", "")),
        ("n/a", ""),
        ("", ""),
        (None, ""),
        ("112", "112"),  # three digits are a number (an emergency or short number)
        ("12", ""),  # two are not
        ("+1 2", ""),
        # Digits of other scripts (Python's \d and \D count them as digits) become the ASCII digits
        # a PBX dials. Found by Hypothesis: a mobile number "00൦" reached a 3CX user as it was.
        ("00൦", "000"),
        ("+٩٧١ ٥٠ ١٢٣ ٤٥٦٧", "+971501234567"),
        ("０３－１２３４－５６７８", "0312345678"),
    ],
)
def test_phone_numbers_are_normalised(raw: str | None, expected: str) -> None:
    assert normalize_phone(raw) == expected
