"""Decide whether the glasses may offer to pay what a code says ("quishing" checks).

`check()` looks at a parsed code; `check_text()` parses and checks in one and never
raises: a malformed code becomes a refusing `Verdict` whose kind is the `PayloadError`'s.
Each failed check adds a machine `kind` and a short sentence the glasses can say.
`ok` on a `ProductCode` or `Other` means nothing suspicious was found, not that it is payable.
"""

import ipaddress
import logging
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from urllib.parse import unquote, unquote_plus

from .currencies import CURRENCY_NAMES, MINOR_UNITS, format_amount
from .links import split_link, wallet_of
from .payloads import parse
from .results import Other, PayloadError, Payment, ProductCode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """The outcome of the checks: `ok` only if no check failed."""

    ok: bool
    reasons: tuple[str, ...]     # one plain sentence per failed check, for the wearer
    kinds: tuple[str, ...]       # machine names of the failed checks, e.g. ("lookalike",)


# --- what is genuine ----------------------------------------------------------------
# Brand word -> the official domain it belongs to. Wallets and the banks behind QR payment
# schemes. Short or everyday words (grab, wise, chase, ing) are left out: they would
# match honest sites.
BRANDS = {
    "alipay": "alipay.com", "weixin": "weixin.qq.com", "wechat": "wechat.com",
    "tenpay": "tenpay.com", "paypal": "paypal.com", "paytm": "paytm.com",
    "phonepe": "phonepe.com", "bhimupi": "bhimupi.org.in", "npci": "npci.org.in",
    "gcash": "gcash.com", "venmo": "venmo.com", "revolut": "revolut.com",
    "mercadopago": "mercadopago.com", "nubank": "nubank.com.br", "unionpay": "unionpay.com",
    "icbc": "icbc.com.cn", "hsbc": "hsbc.com", "barclays": "barclays.co.uk",
    "santander": "santander.com", "bradesco": "bradesco.com.br", "sparkasse": "sparkasse.de",
    "maybank": "maybank.com", "kasikornbank": "kasikornbank.com", "taobao": "taobao.com",
    "alibaba": "alibaba.com", "paylah": "dbs.com.sg", "truemoney": "truemoney.com",
    "bcb": "bcb.gov.br",
}
# The brands' other real domains (national sites, short links): a brand word on a domain
# not listed here is refused, so this list is where a false alarm gets fixed.
GENUINE_DOMAINS = set(BRANDS.values()) | {
    "qq.com", "alipayobjects.com", "dbs.com", "wechatpay.com.hk", "cash.app",
    "alibabacloud.com", "aliyun.com", "paypal.me", "revolut.me", "hsbc.com.hk", "hsbc.co.uk",
    "hsbc.com.sg", "santander.com.br", "santander.co.uk", "santander.de", "santander.es",
    "mercadopago.com.br", "mercadopago.com.ar", "mercadopago.com.mx", "barclays.com",
    "unionpayintl.com", "maybank2u.com.my"}
# Everyday words one edit away from a brand: not imitations.
NOT_IMITATIONS = {"webchat", "revolt", "mybank", "unbank", "payal"}
# Globally unique ids of EMVCo merchant-account templates (casefolded).
KNOWN_GUIS = {"br.gov.bcb.pix", "sg.paynow", "sg.com.nets", "id.co.qris.www", "hk.com.hkicl",
              "com.alipay", "com.grab", "com.mercadopago", "com.unionpay"}
SHORTENERS = {"bit.ly", "bitly.com", "j.mp", "t.co", "tinyurl.com", "goo.gl", "is.gd",
              "v.gd", "ow.ly", "buff.ly", "rebrand.ly", "cutt.ly", "t.cn", "url.cn",
              "dwz.cn", "s.id", "shorturl.at", "t.ly", "rb.gy", "tiny.cc", "bl.ink",
              "qrco.de", "lnkd.in", "surl.li", "clck.ru", "u.to", "suo.im", "tiny.one"}
DANGEROUS_SCHEMES = {"javascript", "vbscript", "data", "file", "blob", "intent",
                     "content", "about", "jar", "view-source"}
_SECOND_LEVEL = {"com", "net", "org", "gov", "edu", "co", "ac", "or", "ne", "go", "mil"}
# Currencies whose unit is so small that a million of it is an everyday sum.
LARGE_UNIT_CURRENCIES = {"IDR", "VND", "KRW", "LAK", "KHR", "MMK", "COP", "CLP"}
MAX_AMOUNT = Decimal(1_000_000)
MAX_FEE_PERCENT = Decimal(10)

# Letters and digits that pass for Latin ones (after NFKD and casefolding).
_CONFUSABLE = str.maketrans({
    "0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ј": "j", "ԁ": "d",
    "ɡ": "g", "һ": "h", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ү": "y", "ı": "i", "ł": "l",
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ø": "o", "ð": "d", "|": "l",
})
_CONFUSABLE_SCRIPTS = {"CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE"}
# Letters (category Lo/Mn/So) that render as nothing.
_BLANK_LETTERS = {0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800, 0x034F}


def skeleton(word: str) -> str:
    """What a word looks like: accents dropped, look-alike letters and digits mapped to Latin."""
    text = "".join(c for c in unicodedata.normalize("NFKD", word)
                   if unicodedata.category(c) != "Mn").casefold().translate(_CONFUSABLE)
    return text.replace("rn", "m").replace("vv", "w")


def distance(a: str, b: str) -> int:
    """Edit distance counting a swap of two neighbours as one edit (optimal string alignment)."""
    prev2, prev = None, list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def registrable(host: str) -> str:
    """The domain a registrar sells ("evil.cn", "bank.com.br") of a lowercased host."""
    labels = host.split(".")
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def _under(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def _imitated_brand(word: str) -> str | None:
    """The official domain a word (a host label or a name) imitates, if any."""
    shape = skeleton(word)
    if shape in NOT_IMITATIONS:
        return None
    for brand, official in BRANDS.items():
        limit = 2 if len(brand) >= 8 else 1 if len(brand) >= 5 else 0
        if shape == brand or (len(brand) >= 6 and brand in shape):
            return official
        if limit and abs(len(shape) - len(brand)) <= limit and distance(shape, brand) <= limit:
            return official
    return None


def imitated_domain(host: str) -> str | None:
    """The genuine domain a (lowercased, Unicode) host imitates, or None if it is genuine."""
    reg = registrable(host)
    if any(_under(host, d) for d in GENUINE_DOMAINS):
        return None
    for domain in sorted(GENUINE_DOMAINS):
        if f".{domain}." in f".{host}.":          # qr.alipay.com.evil.cn
            return domain
    labels = host.split(".")[:-(len(reg.split(".")) - 1) or None]
    for label in labels:
        for word in {label, label.replace("-", ""), *label.split("-")}:
            if word and (official := _imitated_brand(word)):
                return official
    return None


def _script(c: str) -> str:
    words = unicodedata.name(c, "").split()
    for script in ("LATIN", *_CONFUSABLE_SCRIPTS):
        if script in words:
            return script
    return "OTHER"


def _mixed_script(word: str) -> bool:
    scripts = {_script(c) for c in word if c.isalpha()}
    return "LATIN" in scripts and bool(scripts & _CONFUSABLE_SCRIPTS)


def _is_ip(host: str) -> bool:
    if host.startswith("["):
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        # Browsers also read 3405803777, 0xCB007101 and 203.0x0.113 as addresses.
        parts = host[:-1].split(".") if host.endswith(".") else host.split(".")
        return len(parts) <= 4 and all(re.fullmatch(r"0x[0-9a-f]*|[0-9]+", p) for p in parts)


# --- the checks ---------------------------------------------------------------------
def _hidden(text: str, where: str, allow: str = "") -> list[tuple[str, str]]:
    found = []
    for c in text:
        cat = unicodedata.category(c)
        if cat in ("Cf", "Co", "Cn", "Cs") or ord(c) in _BLANK_LETTERS:
            found.append(("invisible", f"The {where} contains an invisible character "
                          f"(U+{ord(c):04X}) that can hide or reorder text."))
        elif cat in ("Cc", "Zl", "Zp") and c not in allow:
            found.append(("control", f"The {where} contains a control character "
                          f"(U+{ord(c):04X})."))
    return found[:1] + [f for f in found[1:] if f[0] != found[0][0]][:1]


def check_link(url: str, *, payment: bool = False, depth: int = 0) -> list[tuple[str, str]]:
    """(kind, reason) for each trick in a link; `payment`: it is where money will go."""
    link = split_link(url)
    if link is None:
        return []
    if link.scheme in DANGEROUS_SCHEMES:
        return [("scheme", f"The code is a {link.scheme}: link, which can run anything "
                 "on a phone.")]
    found = []
    if link.backslash:
        found.append(("url", "The link's address contains a backslash, which browsers "
                      "read differently from how it looks."))
    host = link.host
    if "%" in host:
        found.append(("obfuscated", "The link's address is percent-encoded to hide "
                      "where it goes."))
        host = unquote(host, errors="replace")
    host = unicodedata.normalize("NFKC", host.translate(
        {0x3002: ".", 0xFF0E: ".", 0xFF61: "."})).lower().rstrip(".")
    labels = []
    for label in host.split("."):
        if label.startswith("xn--"):
            found.append(("punycode", f"The link's address {host} is an encoded "
                          "international name, which can imitate a real site."))
            try:
                label = label[4:].encode("ascii").decode("punycode")
            except (UnicodeError, ValueError, IndexError):
                pass                    # not even valid punycode: already refused above
        labels.append(label)
    uhost = ".".join(labels)
    if link.userinfo is not None:
        found.append(("userinfo", f"The link really goes to {uhost}; the part before "
                      f"the @ sign, {link.userinfo[:40]}, is only a disguise."))
    if not link.host.isascii():
        found.append(("idn", f"The link's address {uhost} uses non-Latin characters "
                      "that can imitate a real site."))
    if any(_mixed_script(label) for label in labels):
        found.append(("mixed-script", f"The link's address {uhost} mixes Latin with "
                      "look-alike letters of another alphabet."))
    if uhost and _is_ip(uhost):
        found.append(("ip-host", f"The link goes to a bare internet address, {uhost}, "
                      "instead of a named site."))
    elif uhost:
        if any(_under(uhost, s) for s in SHORTENERS):
            found.append(("shortener", f"The link goes through the shortener "
                          f"{registrable(uhost)}, which hides where it leads."))
        if official := imitated_domain(uhost):
            found.append(("lookalike", f"The link's address starts like {official} but "
                          f"belongs to {registrable(uhost)}." if f".{official}." in f".{uhost}"
                          else f"The link's domain {registrable(uhost)} imitates {official}."))
        elif not any(_under(uhost, d) for d in GENUINE_DOMAINS):
            mentioned = [d for d in GENUINE_DOMAINS if d in link.rest.lower()]
            if mentioned and link.scheme in ("http", "https"):
                found.append(("lookalike", f"The link names {mentioned[0]} but goes to "
                              f"{registrable(uhost)}."))
    if link.port not in (None, "", "80", "443"):
        found.append(("port", f"The link uses the unusual port {link.port[:8]}."))
    wallet = wallet_of(link)
    if link.scheme == "http" and (payment or wallet):
        found.append(("insecure", "The payment link uses plain http, which anyone on "
                      "the network can change."))
    if depth < 2:
        found += _embedded(link.rest, wallet is not None, depth)
    return found


def _embedded(rest: str, in_wallet: bool, depth: int) -> list[tuple[str, str]]:
    """Checks on links carried inside a link's query (redirects, wallet web views)."""
    found = []
    for part in re.split(r"[?&#]", rest):
        value = unquote_plus(part.partition("=")[2], errors="replace")
        inner = split_link(value)
        if inner is None or not inner.host:
            continue
        found += check_link(value, payment=in_wallet, depth=depth + 1)
        host = inner.host.lower().rstrip(".")
        if in_wallet and not any(_under(host, d) for d in GENUINE_DOMAINS):
            found.append(("embedded-url", f"The wallet link opens another site, "
                          f"{registrable(host)}, inside the wallet."))
    return found


def _check_name(name: str) -> list[tuple[str, str]]:
    found = []
    for word in name.split():
        if _mixed_script(word):
            found.append(("mixed-script", f"The payee name {word} mixes Latin with "
                          "look-alike letters of another alphabet."))
        if not word.isascii() and (official := _imitated_brand(word)):
            found.append(("lookalike", f"The payee name {word} imitates "
                          f"{official.split('.')[0]}."))
    return found


def _check_amount(amount: Decimal, currency: str | None) -> list[tuple[str, str]]:
    name = CURRENCY_NAMES.get(currency or "", currency or "")
    if not amount.is_finite():
        return [("amount", "The amount is not a number.")]
    if amount <= 0:
        return [("amount", f"The amount {amount} is zero or negative.")]
    limit = MAX_AMOUNT * (1000 if currency in LARGE_UNIT_CURRENCIES else 1)
    if amount > limit:
        return [("amount", f"The amount {amount} {name} is absurdly large.")]
    minor = MINOR_UNITS.get(currency or "", 2)
    if amount != amount.quantize(Decimal(1).scaleb(-minor)):
        return [("amount", f"The amount {amount} has more decimals than {name} have.")]
    return []


def _gui_checks(gui: str) -> list[tuple[str, str]]:
    folded = gui.casefold()
    if folded in KNOWN_GUIS or not re.fullmatch(r"[a-z0-9\-]+(\.[a-z0-9\-]+)+", folded):
        return []
    near = [k for k in KNOWN_GUIS if distance(folded, k) <= 2]
    official = imitated_domain(".".join(reversed(folded.split("."))))
    if near or official:
        return [("lookalike", f"The code's payment network {gui} imitates "
                 f"{near[0] if near else official}.")]
    return []


_FIELD_NAMES = {"59": "payee name", "60": "city", "pn": "payee name", "name": "payee name",
                "url": "link"}


def _check_payment(p: Payment) -> list[tuple[str, str]]:
    found = []
    for path, value in p.fields:
        found += _hidden(value, _FIELD_NAMES.get(path, f"code's field {path}"))
        if re.fullmatch(r"(2[6-9]|[34][0-9]|5[01])\.00", path):
            found += _gui_checks(value)
    found += _check_name(p.payee)
    if p.amount is not None:
        found += _check_amount(p.amount, p.currency)
    fee_share = (p.fee * 100 / p.amount if p.fee is not None and p.amount
                 and p.amount.is_finite() and p.amount > 0 else p.fee_percent)
    if p.fee is not None and fee_share is None or (fee_share is not None
                                                   and fee_share > MAX_FEE_PERCENT):
        found.append(("fee", "The code adds a convenience fee of more than "
                      f"{MAX_FEE_PERCENT} percent."))
    if p.url:
        found += check_link(p.url, payment=True)
    return found


def _check_asked(p: Payment, asked_amount, asked_currency) -> list[tuple[str, str]]:
    found = []
    if asked_amount is not None and p.amount is not None:
        try:
            same = Decimal(str(asked_amount)) == p.amount
        except InvalidOperation:
            same = False
        if not same:
            found.append(("asked-amount", f"The code asks for "
                          f"{format_amount(p.amount, p.currency)}, not the {asked_amount} "
                          "you said."))
    if asked_currency is not None and p.currency is not None \
            and str(asked_currency).upper() != p.currency:
        found.append(("asked-currency", f"The code is in {p.currency}, not the "
                      f"{asked_currency} you said."))
    return found


def _changed(item, previous: Payment) -> tuple[str, str]:
    if not isinstance(item, Payment):
        return ("changed", "The payment code changed into something else between frames.")
    if item.payee != previous.payee:
        return ("changed", f"The payee changed from {previous.payee} to {item.payee} "
                "between frames.")
    if item.amount != previous.amount or item.currency != previous.currency:
        return ("changed", "The amount changed between frames.")
    return ("changed", "The payment code changed between frames.")


def _verdict(found: list[tuple[str, str]]) -> Verdict:
    reasons, kinds = {}, {}
    for kind, reason in found:
        kinds.setdefault(kind, None)
        reasons.setdefault(reason, None)
    return Verdict(not found, tuple(reasons), tuple(kinds))


def check(payment: Payment | ProductCode | Other, *, previous: Payment | None = None,
          asked_amount: Decimal | None = None, asked_currency: str | None = None) -> Verdict:
    """Run every check on a parsed code.

    `previous`: the payment seen in the frame before (a change refuses); `asked_amount` /
    `asked_currency`: what the wearer said (a code asking for something else refuses).
    """
    found = []
    if isinstance(payment, Payment):
        found += _check_payment(payment)
        found += _check_asked(payment, asked_amount, asked_currency)
    elif isinstance(payment, Other):
        found += _hidden(payment.text, "code's text", allow="\t\n\r")
        if split_link(payment.text) is not None:
            found += check_link(payment.text)
        for url in re.findall(r"(?:https?://|www\.)[^\s<>\"']+", payment.text)[:8]:
            found += check_link(url if "://" in url else "https://" + url)
    if previous is not None and (not isinstance(payment, Payment)
                                 or previous.key() != payment.key()):
        found.append(_changed(payment, previous))
    return _verdict(found)


def _sentence(message: str) -> str:
    message = message.strip()
    return (message[:1].upper() + message[1:]).rstrip(".") + "."


def check_text(text: str, symbology: str = "QRCode", *, previous: Payment | None = None,
               previous_text: str | None = None, **kw
               ) -> tuple[Payment | ProductCode | Other | None, Verdict]:
    """Parse and check in one; never raises: a bad code gives (None, refusing Verdict).

    `previous_text`: the previous frame's text, parsed here when `previous` is not given;
    other keywords go to `check()`.
    """
    item = None
    try:
        item = parse(text, symbology)
        if previous is None and previous_text is not None:
            try:
                before = parse(previous_text, symbology)
            except PayloadError:
                before = None           # an unreadable frame tells nothing about a change
            previous = before if isinstance(before, Payment) else None
        return item, check(item, previous=previous, **kw)
    except PayloadError as e:
        return None, Verdict(False, (_sentence(str(e)),), (e.kind,))
    except Exception:                   # fail closed: a bug here must never let a payment by
        log.exception("payment check failed on %r", str(text)[:80])
        return item, Verdict(False, ("The glasses could not check this code.",),
                             ("internal",))
