"""Parse decoded barcode text into a payment, a product code, or something else.

`parse()` tells the forms apart and hands each to its parser, each read from its spec:
  EMVCo merchant-presented QR and PIX (BR Code) on top of it (`emvco.py`);
  UPI deep links, `upi://pay?pa=...` (`upi.py`); EPC069-12 SEPA credit transfer,
  "GiroCode" (`sepa.py`); Alipay and WeChat Pay wallet links, which hold no payee or
  amount: the wallet fetches them (`links.py`); linear product codes, EAN-13, UPC-A,
  EAN-8, UPC-E, with their check digit verified (`products.py`).
The results (`Payment`, `ProductCode`, `Other`) and `PayloadError` are in `results.py`.

A malformed or altered code raises `PayloadError`; deciding whether a well-formed code is
a trick (look-alike link, changed payee, odd amount) is `safety.py`'s job.
"""

import re

from .emvco import parse_emvco
from .links import split_link, wallet_of
from .products import PRODUCT_LENGTHS, parse_product
from .results import Other, PayloadError, Payment, ProductCode
from .sepa import parse_epc
from .upi import parse_upi

MAX_QR_CHARS = 4296   # a version-40 QR code holds at most this many alphanumeric characters
WALLET_PAYEES = {"alipay": "an Alipay merchant", "wechat": "a WeChat Pay merchant"}


def parse(text: str, symbology: str = "QRCode") -> Payment | ProductCode | Other:
    """Read decoded barcode text (zxing-cpp text and format name).

    Raises PayloadError for a malformed or altered payment or product code; any other
    text is returned as `Other`.
    """
    if not isinstance(text, str):
        raise PayloadError("the code's content is not text; scan it again", "format")
    norm = re.sub(r"[^A-Z0-9]", "", str(symbology).rsplit(".", 1)[-1].upper())
    if norm in PRODUCT_LENGTHS:
        return parse_product(text, *PRODUCT_LENGTHS[norm])
    if len(text) > MAX_QR_CHARS:
        raise PayloadError(f"the code holds {len(text)} characters, more than any QR code "
                           "can: it was not read from a real code", "format")
    if text.startswith("0002"):             # EMVCo payload format indicator, any version
        return parse_emvco(text)
    if text.startswith(("BCD\n", "BCD\r\n")):
        return parse_epc(text)
    link = split_link(text)
    if link is None:
        return Other(text)
    if link.scheme == "upi":
        return parse_upi(text)
    wallet = wallet_of(link)
    if wallet is not None:
        return Payment(scheme=wallet, payee=WALLET_PAYEES[wallet], amount=None,
                       currency=None, url=text, raw=text, fields=(("url", text),))
    return Other(text)
