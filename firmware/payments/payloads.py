"""Parse decoded barcode text into a payment, a product code, or something else.

Payment forms read here, each from its published spec:
  EMVCo merchant-presented QR (TLV, CRC-16/CCITT-FALSE), and PIX (BR Code) on top of it;
  UPI deep links (`upi://pay?pa=...`); EPC069-12 SEPA credit transfer ("GiroCode");
  Alipay and WeChat Pay wallet links (no payee or amount inside: the wallet fetches them).
Linear product codes (EAN-13, UPC-A, EAN-8) have their check digit verified.

A malformed or altered code raises `PayloadError`; deciding whether a well-formed code is
a trick (look-alike link, changed payee, odd amount) is `safety.py`'s job.
"""

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import unquote_plus

from glasses_firmware.drivers.errors import GlassesError

from .currencies import CURRENCY_BY_NUMERIC, CURRENCY_NAMES, MINOR_UNITS, format_amount  # noqa: F401

MAX_QR_CHARS = 4296   # a version-40 QR code holds at most this many alphanumeric characters
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
# EMVCo merchant-account globally unique ids we can name aloud (casefolded).
EMV_NETWORKS = {"sg.paynow": "PayNow", "a000000677010111": "PromptPay",
                "a000000677010112": "PromptPay", "a000000677010113": "PromptPay",
                "id.co.qris.www": "QRIS", "a000000727": "VietQR", "hk.com.hkicl": "FPS",
                "br.gov.bcb.pix": "PIX"}
PIX_GUI = "br.gov.bcb.pix"


def clean(text: str) -> str:
    """Text as it will be spoken: format and control characters dropped, spaces collapsed."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text
                   if unicodedata.category(c) != "Cf")
    return " ".join(text.split())


# --- results ------------------------------------------------------------------------
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


# --- links --------------------------------------------------------------------------
@dataclass(frozen=True)
class Link:
    """A URL split the way a browser would split it (tabs and newlines removed first)."""

    scheme: str              # lowercased
    userinfo: str | None     # the part before "@" in the authority, if any
    host: str                # as written (not lowercased, not decoded); "" if none
    port: str | None
    rest: str                # path, query and fragment
    backslash: bool          # a "\" in the authority: browsers read it as "/"


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(.*)", re.S)


def split_link(text: str) -> Link | None:
    """Split `text` as a URL, or None if it does not start with a scheme."""
    text = re.sub(r"[\t\n\r]", "", text.strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b"
                                              "\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16"
                                              "\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f \t\n\r"))
    m = _SCHEME.fullmatch(text)
    if not m:
        return None
    scheme, rest = m.group(1).lower(), m.group(2)
    if not (rest.startswith("//") or rest.startswith("\\\\") or rest.startswith("/\\")
            or rest.startswith("\\/")):
        return Link(scheme, None, "", None, rest, False)
    rest = rest[2:]
    end = len(rest)
    for stop in "/?#\\":
        i = rest.find(stop)
        if i != -1:
            end = min(end, i)
    authority, rest = rest[:end], rest[end:]
    backslash = rest.startswith("\\")
    userinfo, at, hostport = authority.rpartition("@")
    host, port = hostport, None
    if hostport.startswith("["):
        close = hostport.find("]")
        host, tail = (hostport, "") if close == -1 else (hostport[:close + 1], hostport[close + 1:])
        port = tail[1:] if tail.startswith(":") else None
    elif ":" in hostport:
        host, _, port = hostport.rpartition(":")
    return Link(scheme, userinfo if at else None, host, port, rest, backslash)


def host_of(link: Link) -> str:
    """The host lowercased, without a trailing dot."""
    return link.host.lower().rstrip(".")


# --- EMVCo / PIX --------------------------------------------------------------------
_DIGITS2 = re.compile(r"[0-9]{2}")
_AMOUNT = re.compile(r"[0-9]+(\.[0-9]*)?")


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection): EMVCo tag 63."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def tlv(text: str, where: str = "the code") -> list[tuple[str, str]]:
    """Split EMVCo TLV (2-digit id, 2-digit length in characters); duplicate ids refused."""
    out, seen, i = [], set(), 0
    while i < len(text):
        tag, length = text[i:i + 2], text[i + 2:i + 4]
        if not (_DIGITS2.fullmatch(tag) and _DIGITS2.fullmatch(length)) or length == "00":
            raise PayloadError(f"{where} has a broken field header {text[i:i + 4]!r} at "
                               f"character {i}: it is not an EMVCo code; {DO_NOT_PAY}", "format")
        value = text[i + 4:i + 4 + int(length)]
        if len(value) != int(length):
            raise PayloadError(f"field {tag} of {where} claims {int(length)} characters but "
                               f"only {len(value)} remain: the code is cut or altered; "
                               f"{DO_NOT_PAY}", "format")
        if tag in seen:
            raise PayloadError(f"field {tag} appears twice in {where}: a second value can "
                               f"hide behind the first; {DO_NOT_PAY}", "duplicate")
        seen.add(tag)
        out.append((tag, value))
        i += 4 + int(length)
    return out


def _amount(text: str, what: str) -> Decimal:
    if not _AMOUNT.fullmatch(text) or len(text) > 13:
        raise PayloadError(f"the {what} {text!r} is not a plain positive number: the code is "
                           f"malformed or forged; {DO_NOT_PAY}", "amount")
    return Decimal(text)


def _is_template(tag: str) -> bool:
    return 26 <= int(tag) <= 51 or tag in ("62", "64") or int(tag) >= 80


def _parse_emvco(text: str) -> Payment:
    if len(text) < 12 or text[-8:-4] != "6304":
        raise PayloadError("the code has no CRC (field 63) at its end: it is cut or not an "
                           f"EMVCo code; {DO_NOT_PAY}", "format")
    given = text[-4:]
    computed = crc16_ccitt_false(text[:-4].encode("utf-8"))
    if not re.fullmatch(r"[0-9A-Fa-f]{4}", given) or int(given, 16) != computed:
        raise PayloadError(f"the code's CRC does not match its contents ({given}, computed "
                           f"{computed:04X}): it was altered or misread; {DO_NOT_PAY}",
                           "checksum")
    top = tlv(text)
    if top[0] != ("00", "01") or top[-1][0] != "63":
        raise PayloadError("the code does not start with payload format 01 and end with "
                           f"its CRC: not an EMVCo payment code; {DO_NOT_PAY}", "format")
    fields, sub = [], {}
    for tag, value in top:
        if _is_template(tag):
            sub[tag] = dict(tlv(value, f"template {tag}"))
            fields += [(f"{tag}.{t}", v) for t, v in sub[tag].items()]
        else:
            fields.append((tag, value))
    values = dict(top)
    accounts = [(t, sub[t]) for t in sorted(sub) if 26 <= int(t) <= 51]
    primitive = [(t, v) for t, v in top if 2 <= int(t) <= 25]
    if not accounts and not primitive:
        raise PayloadError("the code names no merchant account (fields 02-51): nobody to "
                           f"pay; {DO_NOT_PAY}", "field")
    if "53" not in values:
        raise PayloadError(f"the code has no currency (field 53); {DO_NOT_PAY}", "field")
    currency = CURRENCY_BY_NUMERIC.get(values["53"])
    if currency is None:
        raise PayloadError(f"the code's currency {values['53']!r} is not one the glasses "
                           f"know, so the amount cannot be said; {DO_NOT_PAY}", "currency")
    amount = _amount(values["54"], "amount") if "54" in values else None
    fee = fee_percent = None
    if values.get("55") == "02" and "56" in values:
        fee = _amount(values["56"], "convenience fee")
    elif values.get("55") == "03" and "57" in values:
        fee_percent = _amount(values["57"], "convenience fee")
    mcc = values.get("52")
    if mcc is not None and not re.fullmatch(r"[0-9]{4}", mcc):
        raise PayloadError(f"the merchant category {mcc!r} is not 4 digits; {DO_NOT_PAY}",
                           "field")
    extra = sub.get("62", {})
    reference = extra.get("05") or extra.get("01")
    pix = [s for _, s in accounts if s.get("00", "").casefold() == PIX_GUI]
    url = None
    if pix:
        scheme, account, url = "pix", *_pix_account(pix[0])
        if currency != "BRL" or values.get("58", "BR") != "BR":
            raise PayloadError(f"a PIX code must be in Brazilian reais in Brazil, this one "
                               f"says {currency} in {values.get('58')}; {DO_NOT_PAY}",
                               "currency")
        network = None
    elif accounts:
        scheme, (tag, first) = "emvco", accounts[0]
        account = " ".join(v for t, v in first.items() if t != "00") or first.get("00")
        network = EMV_NETWORKS.get(first.get("00", "").casefold())
    else:
        scheme, account = "emvco", primitive[0][1]
        network = None
    name = clean(values.get("59", ""))
    if not name:
        name = f"{network or 'merchant'} account {clean(account or '')}".strip()
    return Payment(scheme=scheme, payee=name, amount=amount, currency=currency,
                   city=clean(values.get("60", "")) or None, account=account, url=url,
                   reference=reference, raw=text, network=network, fee=fee,
                   fee_percent=fee_percent, fields=tuple(fields))


def _check_digits_ok(digits: str, first_weight: int) -> bool:
    # CPF/CNPJ mod-11 check digits, computed over the digits before each.
    for n in (len(digits) - 2, len(digits) - 1):
        if first_weight == 10:      # CPF: weights n+1 .. 2
            weights = range(n + 1, 1, -1)
        else:                       # CNPJ: 5..2 then 9..2 (6..2, 9..2 for the second)
            weights = ([5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2] if n == 12
                       else [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2])
        total = sum(int(d) * w for d, w in zip(digits[:n], weights))
        check = 11 - total % 11
        if (0 if check >= 10 else check) != int(digits[n]):
            return False
    return len(set(digits)) > 1


_PIX_KEY_FORMS = [
    ("phone", re.compile(r"\+55[0-9]{10,11}")),
    ("random key", re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")),
    ("e-mail", re.compile(r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+")),
]


def _pix_account(template: dict) -> tuple[str | None, str | None]:
    """(PIX key, dynamic URL) of a PIX merchant-account template; a bad key raises."""
    key, location = template.get("01"), template.get("25")
    if key is None and location is None:
        raise PayloadError(f"the PIX code has neither a key (26.01) nor a URL (26.25); "
                           f"{DO_NOT_PAY}", "pix-key")
    if key is not None:
        if re.fullmatch(r"[0-9]{11}", key):
            ok = _check_digits_ok(key, 10)
        elif re.fullmatch(r"[0-9]{14}", key):
            ok = _check_digits_ok(key, 5)
        else:
            ok = len(key) <= 77 and any(form.fullmatch(key) for _, form in _PIX_KEY_FORMS)
        if not ok:
            raise PayloadError(f"the PIX key {key[:40]!r} is not a valid CPF, CNPJ, phone, "
                               f"e-mail or random key; {DO_NOT_PAY}", "pix-key")
    if location is None:
        return key, None
    # Dynamic PIX: the URL is written without its scheme and is always fetched over https.
    return key, location if "://" in location else "https://" + location


# --- UPI ----------------------------------------------------------------------------
VPA = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{1,255}@[A-Za-z][A-Za-z0-9]{1,63}")


def _parse_upi(text: str) -> Payment:
    link = split_link(text)
    if link is None or host_of(link) != "pay" or link.userinfo is not None:
        raise PayloadError("only UPI payment links (upi://pay?...) are supported, not "
                           f"{text[:30]!r}; {DO_NOT_PAY}", "unsupported")
    query = text.partition("?")[2]
    params: dict[str, str] = {}
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        name = name.lower()
        if name in params:
            raise PayloadError(f"the UPI parameter {name!r} appears twice: a second value "
                               f"can hide behind the first; {DO_NOT_PAY}", "duplicate")
        try:
            params[name] = unquote_plus(value, errors="strict")
        except UnicodeDecodeError:
            raise PayloadError(f"the UPI parameter {name!r} is not valid percent-encoded "
                               f"UTF-8; {DO_NOT_PAY}", "format") from None
    pa = params.get("pa")
    if pa is None:
        raise PayloadError(f"the UPI link has no payee address (pa); {DO_NOT_PAY}", "field")
    if not VPA.fullmatch(pa):
        raise PayloadError(f"the UPI payee address {pa[:40]!r} is not a UPI ID (name@bank); "
                           f"{DO_NOT_PAY}", "vpa")
    if params.get("cu", "INR") != "INR":
        raise PayloadError(f"a UPI payment must be in INR, this one says "
                           f"{params['cu'][:10]!r}; {DO_NOT_PAY}", "currency")
    if "mc" in params and not re.fullmatch(r"[0-9]{4}", params["mc"]):
        raise PayloadError(f"the UPI merchant code {params['mc'][:10]!r} is not 4 digits; "
                           f"{DO_NOT_PAY}", "field")
    amount = _amount(params["am"], "amount") if params.get("am") else None
    return Payment(scheme="upi", payee=clean(params.get("pn", "")) or pa, amount=amount,
                   currency="INR", account=pa, url=params.get("url"),
                   reference=params.get("tr") or params.get("tn"), raw=text,
                   fields=tuple(params.items()))


# --- EPC / SEPA ---------------------------------------------------------------------
# Total IBAN length per country (ISO 13616 registry), for the common SEPA countries.
IBAN_LENGTHS = {"AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22,
                "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27,
                "HR": 21, "HU": 28, "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20,
                "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28,
                "PT": 25, "RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27}
_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")
_BIC = re.compile(r"[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?")


def iban_ok(iban: str) -> bool:
    """ISO 7064 mod 97-10 over the IBAN with its first four characters moved to the end."""
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _epc_error(what: str, kind: str = "field") -> PayloadError:
    return PayloadError(f"the SEPA (EPC) code {what}; {DO_NOT_PAY}", kind)


def _parse_epc(text: str) -> Payment:
    body = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
    lines = re.split(r"\r?\n", body)
    if len(lines) < 7 or len(lines) > 12:
        raise _epc_error(f"has {len(lines)} lines, not 7 to 12", "format")
    _, version, charset, ident, bic, name, iban, *rest = lines + [""] * (12 - len(lines))
    amount_text, purpose, structured, unstructured, info = rest[:5]
    if version not in ("001", "002"):
        raise _epc_error(f"has version {version[:5]!r}, not 001 or 002", "unsupported")
    if charset not in tuple("12345678"):
        raise _epc_error(f"has character set {charset[:5]!r}, not 1 to 8", "format")
    if ident != "SCT":
        raise _epc_error(f"is for {ident[:5]!r}, not a SEPA credit transfer (SCT)",
                         "unsupported")
    if bic and not _BIC.fullmatch(bic) or not bic and version == "001":
        raise _epc_error(f"has a malformed or missing BIC {bic[:12]!r}")
    if not clean(name) or len(name) > 70:
        raise _epc_error("has an empty beneficiary name or one over 70 characters")
    if not _IBAN.fullmatch(iban) or IBAN_LENGTHS.get(iban[:2], len(iban)) != len(iban):
        raise _epc_error(f"has a malformed IBAN {iban[:40]!r}", "iban")
    if not iban_ok(iban):
        raise _epc_error(f"has an IBAN whose check digits do not match ({iban}): it was "
                         "altered or misread", "checksum")
    amount = None
    if amount_text:
        if not amount_text.startswith("EUR"):
            raise _epc_error(f"asks for {amount_text[:3]!r}; SEPA transfers are in euros",
                             "currency")
        amount = _amount(amount_text[3:], "amount")
    if not re.fullmatch(r"[A-Z0-9]{0,4}", purpose):
        raise _epc_error(f"has a malformed purpose code {purpose[:10]!r}")
    if structured and unstructured:
        raise _epc_error("has both a structured reference and remittance text")
    if len(structured) > 35 or len(unstructured) > 140 or len(info) > 70:
        raise _epc_error("has a reference or text longer than the standard allows")
    names = ("service", "version", "charset", "identification", "bic", "name", "iban",
             "amount", "purpose", "reference", "text", "information")
    return Payment(scheme="epc", payee=clean(name), amount=amount, currency="EUR",
                   account=iban, reference=clean(structured or unstructured) or None,
                   raw=text, fields=tuple(zip(names, lines)))


# --- wallets and product codes ------------------------------------------------------
WALLET_SCHEMES = {"alipays": "alipay", "alipay": "alipay", "alipayqr": "alipay",
                  "wxp": "wechat", "weixin": "wechat"}
WALLET_DOMAINS = {"alipay.com": "alipay", "weixin.qq.com": "wechat", "wechat.com": "wechat",
                  "tenpay.com": "wechat"}
WALLET_PAYEES = {"alipay": "an Alipay merchant", "wechat": "a WeChat Pay merchant"}


def wallet_of(link: Link) -> str | None:
    """"alipay"/"wechat" if the link is a wallet's own scheme or on its own domain."""
    if link.scheme in WALLET_SCHEMES:
        return WALLET_SCHEMES[link.scheme]
    host = host_of(link)
    if link.scheme in ("http", "https"):
        for domain, wallet in WALLET_DOMAINS.items():
            if host == domain or host.endswith("." + domain):
                return wallet
    return None


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


def _parse_product(text: str, symbology: str, length: int) -> ProductCode:
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


def parse(text: str, symbology: str = "QRCode") -> Payment | ProductCode | Other:
    """Read decoded barcode text (zxing-cpp text and format name).

    Raises PayloadError for a malformed or altered payment or product code; any other
    text is returned as `Other`.
    """
    if not isinstance(text, str):
        raise PayloadError("the code's content is not text; scan it again", "format")
    norm = re.sub(r"[^A-Z0-9]", "", str(symbology).rsplit(".", 1)[-1].upper())
    if norm in PRODUCT_LENGTHS:
        return _parse_product(text, *PRODUCT_LENGTHS[norm])
    if len(text) > MAX_QR_CHARS:
        raise PayloadError(f"the code holds {len(text)} characters, more than any QR code "
                           "can: it was not read from a real code", "format")
    if text.startswith("0002"):             # EMVCo payload format indicator, any version
        return _parse_emvco(text)
    if text.startswith(("BCD\n", "BCD\r\n")):
        return _parse_epc(text)
    link = split_link(text)
    if link is None:
        return Other(text)
    if link.scheme == "upi":
        return _parse_upi(text)
    wallet = wallet_of(link)
    if wallet is not None:
        return Payment(scheme=wallet, payee=WALLET_PAYEES[wallet], amount=None,
                       currency=None, url=text, raw=text, fields=(("url", text),))
    return Other(text)
