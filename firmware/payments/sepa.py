"""EPC069-12 SEPA credit transfer codes ("GiroCode"), with their IBAN and BIC checked.

The IBAN's length per country (ISO 13616) and its ISO 7064 mod 97-10 check digits are
verified, so an altered or misread account number is refused before anyone is paid.
"""

import re

from .results import DO_NOT_PAY, PayloadError, Payment, clean, read_amount

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


def parse_epc(text: str) -> Payment:
    """Read an EPC (SEPA) transfer code; PayloadError for a bad line, IBAN, BIC or amount."""
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
        amount = read_amount(amount_text[3:], "amount")
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
