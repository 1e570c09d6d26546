"""UPI payment links (`upi://pay?pa=...`): the payee's UPI ID, amount in INR, reference."""

import re
from urllib.parse import unquote_plus

from .links import host_of, split_link
from .results import DO_NOT_PAY, PayloadError, Payment, clean, read_amount

VPA = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{1,255}@[A-Za-z][A-Za-z0-9]{1,63}")


def parse_upi(text: str) -> Payment:
    """Read a `upi://pay` link; PayloadError for a bad UPI ID, a repeated parameter or not INR."""
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
    amount = read_amount(params["am"], "amount") if params.get("am") else None
    return Payment(scheme="upi", payee=clean(params.get("pn", "")) or pa, amount=amount,
                   currency="INR", account=pa, url=params.get("url"),
                   reference=params.get("tr") or params.get("tn"), raw=text,
                   fields=tuple(params.items()))
