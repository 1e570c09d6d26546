"""Retail product barcodes (EAN-13, UPC-A, EAN-8, UPC-E), read with their check digit verified."""

import re

from .results import PayloadError, ProductCode

PRODUCT_LENGTHS = {"EAN13": ("EAN-13", 13), "UPCA": ("UPC-A", 12), "EAN8": ("EAN-8", 8),
                   "UPCE": ("UPC-E", 8)}


def upce_to_upca(digits: str) -> str:
    """The 12-digit UPC-A a zero-suppressed 8-digit UPC-E stands for (its check digit is A's)."""
    ns, d, check = digits[0], digits[1:7], digits[7]
    last = int(d[5])
    if last <= 2:
        body = d[0:2] + d[5] + "0000" + d[2:5]
    elif last == 3:
        body = d[0:3] + "00000" + d[3:5]
    elif last == 4:
        body = d[0:4] + "00000" + d[4]
    else:
        body = d[0:5] + "0000" + d[5]
    return ns + body + check


def parse_product(text: str, symbology: str, length: int) -> ProductCode:
    """Read `length` digits of `symbology`; PayloadError if misread or the check digit is wrong."""
    if not re.fullmatch(f"[0-9]{{{length}}}", text) or symbology == "UPC-E" and text[0] > "1":
        raise PayloadError(f"a {symbology} code must be {length} digits, this one reads "
                           f"{text[:20]!r}: misread; scan it again", "format")
    full = upce_to_upca(text) if symbology == "UPC-E" else text
    body, check = full[:-1], int(full[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    if (10 - total % 10) % 10 != check:
        raise PayloadError(f"the {symbology} check digit does not match ({text}): misread "
                           "or altered; scan it again", "checksum")
    return ProductCode(symbology, text)
