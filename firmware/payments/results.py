"""What a scanned code turns out to be, and what the code parsers share.

`Payment`, `ProductCode` and `Other` are the results of `payloads.parse()`; `PayloadError`
is what a malformed or altered code raises. `clean()` makes text safe to speak and
`read_amount()` reads an amount field the way every payment scheme here writes it.
"""

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

from glasses_firmware.drivers.errors import GlassesError

from .currencies import CURRENCY_NAMES, format_amount
from .links import split_link

DO_NOT_PAY = "do not pay; ask the merchant for another code"


class PayloadError(GlassesError, ValueError):
    """A code that is not a valid payment or product code; the message says what and what to do.

    `kind` is a short machine reason: "checksum", "format", "field", "unsupported",
    "duplicate", "amount", "currency", "vpa", "pix-key", "iban".
    """

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


SCHEME_LABELS = {"emvco": "EMVCo QR", "pix": "PIX", "upi": "UPI", "epc": "SEPA transfer",
                 "alipay": "Alipay", "wechat": "WeChat Pay"}


def clean(text: str) -> str:
    """Text as it will be spoken: format and control characters dropped, spaces collapsed."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text
                   if unicodedata.category(c) != "Cf")
    return " ".join(text.split())


_AMOUNT = re.compile(r"[0-9]+(\.[0-9]*)?")


def read_amount(text: str, what: str) -> Decimal:
    """A plain positive decimal of at most 13 characters; PayloadError("amount") otherwise."""
    if not _AMOUNT.fullmatch(text) or len(text) > 13:
        raise PayloadError(f"the {what} {text!r} is not a plain positive number: the code is "
                           f"malformed or forged; {DO_NOT_PAY}", "amount")
    return Decimal(text)


@dataclass(frozen=True)
class Payment:
    """A payment request read from a code; `amount` None means the payer must enter it."""

    scheme: str              # "emvco" | "pix" | "upi" | "epc" | "alipay" | "wechat"
    payee: str               # merchant/beneficiary name as it will be spoken (cleaned)
    amount: Decimal | None
    currency: str | None     # ISO 4217 alpha
    city: str | None = None
    account: str | None = None   # VPA, IBAN, PIX key, merchant id
    url: str | None = None       # wallet link, PIX dynamic URL, UPI `url`
    reference: str | None = None
    raw: str = ""
    network: str | None = None   # spoken name of the EMVCo network ("PayNow"), if known
    fee: Decimal | None = None          # EMVCo fixed convenience fee (tag 56)
    fee_percent: Decimal | None = None  # EMVCo percentage convenience fee (tag 57)
    # Every field exactly as decoded (path, value): what safety scans for hidden
    # characters, and what makes any change to the code a change of key().
    fields: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        """Spoken form: "Pay Joe's Noodles, Singapore, 12.50 Singapore dollars via EMVCo QR"."""
        parts = [f"Pay {self.payee}"]
        if self.city:
            parts.append(self.city)
        if self.amount is not None:
            name = CURRENCY_NAMES.get(self.currency or "", self.currency or "")
            parts.append(f"{format_amount(self.amount, self.currency)} {name}".strip())
        else:
            parts.append("no amount in the code")
        text = ", ".join(parts)
        if self.fee is not None:
            text += f", plus a fee of {format_amount(self.fee, self.currency)}"
        if self.fee_percent is not None:
            text += f", plus a fee of {self.fee_percent} percent"
        return f"{text} via {self.network or SCHEME_LABELS.get(self.scheme, self.scheme)}"

    def key(self) -> tuple:
        """Identity of the payment: two frames show the same payment iff their keys are equal."""
        return (self.scheme, self.payee, self.account, self.amount, self.currency,
                self.url, self.reference, self.fields)


@dataclass(frozen=True)
class ProductCode:
    """A retail product barcode whose check digit was verified."""

    symbology: str           # "EAN-13", "UPC-A", "EAN-8", "UPC-E"
    digits: str

    def describe(self) -> str:
        return f"Product code {self.digits} ({self.symbology}); not a payment"


@dataclass(frozen=True)
class Other:
    """A code that is neither a payment nor a product code (a web link, plain text)."""

    text: str

    def describe(self) -> str:
        link = split_link(self.text)
        if link is not None and link.host:
            return f"Not a payment code: a link to {clean(link.host)}"
        shown = clean(self.text)
        return f"Not a payment code: {shown[:60]}{'...' if len(shown) > 60 else ''}"
