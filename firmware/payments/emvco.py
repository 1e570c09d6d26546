"""EMVCo merchant-presented QR codes, and PIX (BR Code) on top of them.

TLV fields (2-digit id, 2-digit length) with a CRC-16/CCITT-FALSE in tag 63, read from
the EMVCo spec; a PIX code is an EMVCo code whose merchant template is `br.gov.bcb.pix`,
and its key (CPF, CNPJ, phone, e-mail, random key) is checked here.
"""

import re

from .currencies import CURRENCY_BY_NUMERIC
from .results import DO_NOT_PAY, PayloadError, Payment, clean, read_amount

# EMVCo merchant-account globally unique ids we can name aloud (casefolded).
EMV_NETWORKS = {"sg.paynow": "PayNow", "a000000677010111": "PromptPay",
                "a000000677010112": "PromptPay", "a000000677010113": "PromptPay",
                "id.co.qris.www": "QRIS", "a000000727": "VietQR", "hk.com.hkicl": "FPS",
                "br.gov.bcb.pix": "PIX"}
PIX_GUI = "br.gov.bcb.pix"

_DIGITS2 = re.compile(r"[0-9]{2}")


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


def _is_template(tag: str) -> bool:
    return 26 <= int(tag) <= 51 or tag in ("62", "64") or int(tag) >= 80


def parse_emvco(text: str) -> Payment:
    """Read an EMVCo (or PIX) merchant code; PayloadError if its CRC, fields or PIX key are bad."""
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
    amount = read_amount(values["54"], "amount") if "54" in values else None
    fee = fee_percent = None
    if values.get("55") == "02" and "56" in values:
        fee = read_amount(values["56"], "convenience fee")
    elif values.get("55") == "03" and "57" in values:
        fee_percent = read_amount(values["57"], "convenience fee")
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
