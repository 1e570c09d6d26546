"""Payment codes for tests: honest ones, and one per quishing trick the glasses must refuse.

Every payload is built here from the specs (nothing pasted from real codes) and is short
enough for a QR code. Payloads with non-ASCII characters need UTF-8 (ECI 26) when rendered.

VALID:     (name, payload text)
MALICIOUS: (trick name, payload text, keyword args for check_text(), expected kind substring)
"""

import binascii
from decimal import Decimal


# --- builders, independent of the firmware's own code -------------------------------
def tlv(*pairs: tuple[str, str]) -> str:
    return "".join(f"{tag}{len(value):02d}{value}" for tag, value in pairs)


def with_crc(body: str) -> str:
    """Append field 63 with CRC-16/CCITT-FALSE (crc_hqx is the same CRC with init 0xFFFF)."""
    body += "6304"
    return body + f"{binascii.crc_hqx(body.encode('utf-8'), 0xFFFF):04X}"


def emv(*pairs: tuple[str, str]) -> str:
    return with_crc("000201" + tlv(*pairs))


def iban(country: str, bban: str) -> str:
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(digits) % 97:02d}{bban}"


def cpf(nine: str) -> str:
    digits = nine
    for n in (9, 10):
        check = sum(int(d) * w for d, w in zip(digits, range(n + 1, 1, -1))) * 10 % 11
        digits += str(check % 10)
    return digits


def ean(body: str) -> str:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


PAYNOW = tlv(("00", "SG.PAYNOW"), ("01", "2"), ("02", "201403121W"), ("03", "0"))


def sg(name="Joe's Noodles", amount="12.50", currency="702", account=PAYNOW, tail=()):
    pairs = [("01", "12"), ("26", account), ("52", "5812"), ("53", currency)]
    if amount is not None:
        pairs.append(("54", amount))
    pairs += [("58", "SG"), ("59", name), ("60", "Singapore"), *tail]
    return emv(*pairs)


def pix(key=None, url=None, amount="66.60", currency="986", gui="br.gov.bcb.pix"):
    account = tlv(("00", gui), *([("01", key)] if key else []), *([("25", url)] if url else []))
    pairs = [("26", account), ("52", "0000"), ("53", currency)]
    if amount:
        pairs.append(("54", amount))
    return emv(*pairs, ("58", "BR"), ("59", "PADARIA BOA VISTA"), ("60", "SAO PAULO"),
               ("62", tlv(("05", "PED123"))))


def epc(*lines: str) -> str:
    return "\n".join(lines)


IBAN_DE = iban("DE", "370400440532013000")
IBAN_NL = iban("NL", "INGB0001234567")
SEPA = ["BCD", "002", "1", "SCT", "", "Stadtwerke Musterstadt", IBAN_DE, "EUR12.34",
        "", "", "Rechnung 2024-117"]
UPI = "upi://pay?pa=joesnoodles@okicici&pn=Joe%27s%20Noodles&am=250.00&cu=INR&tn=Lunch"

VALID: list[tuple[str, str]] = [
    ("emvco-paynow-sgd", sg()),
    ("emvco-paynow-no-amount", sg(amount=None)),
    ("emvco-unionpay-cny-chinese-name", emv(
        ("01", "11"), ("15", "6229123456789012"), ("52", "5814"), ("53", "156"),
        ("54", "36.00"), ("58", "CN"), ("59", "老王面馆"), ("60", "上海"))),
    ("emvco-promptpay-no-name", emv(
        ("01", "11"), ("29", tlv(("00", "A000000677010111"), ("01", "0066812345678"))),
        ("53", "764"), ("58", "TH"))),
    ("emvco-qris-idr", emv(
        ("01", "12"), ("26", tlv(("00", "ID.CO.QRIS.WWW"), ("01", "936000140000012345"))),
        ("52", "5499"), ("53", "360"), ("54", "150000"), ("58", "ID"),
        ("59", "Warung Sari"), ("60", "Jakarta"))),
    ("emvco-jpy-whole", emv(
        ("26", tlv(("00", "jp.example.pay"), ("01", "M0001"))), ("52", "5812"),
        ("53", "392"), ("54", "1200"), ("58", "JP"), ("59", "Ramen Ichi"), ("60", "Tokyo"))),
    ("emvco-small-fee", sg(amount="20.00", tail=(("55", "02"), ("56", "0.50")))),
    ("pix-static-phone", pix(key="+5521987654321")),
    ("pix-static-cpf", pix(key=cpf("529982247"), amount=None)),
    ("pix-static-evp", pix(key="3f2c1a9e-7b4d-4e21-9c0a-5d6e7f8a9b0c")),
    ("pix-static-email", pix(key="caixa@padaria-boavista.com.br", amount="10.00")),
    ("pix-dynamic-url", pix(url="pix.psp.example.com/qr/v2/9d36b84f-c70b-478f", amount=None)),
    ("upi-with-amount", UPI),
    ("upi-no-amount", "upi://pay?pa=ravi.kumar@oksbi&pn=Ravi%20Kumar&cu=INR"),
    ("epc-v002-no-bic", epc(*SEPA)),
    ("epc-v001-bic-no-amount", epc("BCD", "001", "1", "SCT", "INGBNL2A", "Stichting Voedselbank",
                                   IBAN_NL, "", "CHAR", "", "Gift")),
    ("epc-crlf-structured-ref", "\r\n".join(["BCD", "002", "1", "SCT", "COBADEFFXXX",
                                             "Hausverwaltung Nord", IBAN_DE, "EUR450.00", "",
                                             "RF18539007547034"])),
    ("alipay-qr-link", "https://qr.alipay.com/fkx18304ceg0tzwpm3qbf6c"),
    ("alipay-scheme", "alipays://platformapi/startapp?saId=10000007&qrcode="
                      "https%3A%2F%2Fqr.alipay.com%2Fbax03431ljhokirwl38f00a7"),
    ("wechat-wxp", "wxp://f2f0bWY8uuXuxoAVRkIlHRZRUrqxTlzeKpRq"),
    ("wechat-bizpayurl", "weixin://wxpay/bizpayurl?pr=Q1w2E3r"),
    ("wechat-payapp", "https://payapp.weixin.qq.com/qr/AbC123dEf"),
    ("web-link", "https://www.example.com/menu?table=4"),
    ("plain-text", "Table 12 - thank you for dining with us"),
    ("wifi", "WIFI:S:CafeGuest;T:WPA;P:noodles123;;"),
]

_TH = {"asked_amount": Decimal("12.50")}
MALICIOUS: list[tuple[str, str, dict, str]] = [
    # -- EMVCo structure --
    ("emv-crc-kept-after-amount-edit", sg().replace("540512.50", "540592.50"), {}, "checksum"),
    ("emv-crc-missing", "000201" + tlv(("26", PAYNOW), ("53", "702"), ("54", "1.00"),
                                       ("59", "Joe")), {}, "format"),
    ("emv-data-after-crc", sg() + "9903abc", {}, "format"),
    ("emv-format-indicator-02", with_crc("000202" + tlv(("26", PAYNOW), ("53", "702"),
                                                        ("59", "Joe"))), {}, "format"),
    ("emv-length-overrun", with_crc("000201" + tlv(("26", PAYNOW), ("53", "702"))
                                    + "5999Joe"), {}, "format"),
    ("emv-non-digit-length", with_crc("000201" + tlv(("26", PAYNOW), ("53", "702"))
                                      + "590AJoe Noodle"), {}, "format"),
    ("emv-duplicate-name", sg(tail=(("59", "Evil Trading"),)), {}, "duplicate"),
    ("emv-duplicate-amount", sg(tail=(("54", "999.00"),)), {}, "duplicate"),
    ("emv-duplicate-in-template", sg(account=PAYNOW + tlv(("02", "T99EVIL01A"))), {},
     "duplicate"),
    ("emv-no-merchant-account", emv(("53", "702"), ("54", "5.00"), ("59", "Joe")), {},
     "field"),
    ("emv-mcc-not-digits", emv(("26", PAYNOW), ("52", "ABCD"), ("53", "702"),
                               ("59", "Joe")), {}, "field"),
    ("emv-unknown-currency", sg(currency="999"), {}, "currency"),
    # -- amounts --
    ("emv-amount-zero", sg(amount="0.00"), {}, "amount"),
    ("emv-amount-negative", sg(amount="-5.00"), {}, "amount"),
    ("emv-amount-nan", sg(amount="NaN"), {}, "amount"),
    ("emv-amount-exponent", sg(amount="1E5"), {}, "amount"),
    ("emv-amount-absurd", sg(amount="9999999.99"), {}, "amount"),
    ("emv-amount-extra-decimals", sg(amount="12.505"), {}, "amount"),
    ("emv-yen-with-fraction", sg(amount="1200.50", currency="392"), {}, "amount"),
    ("emv-large-convenience-fee", sg(amount="5.00", tail=(("55", "02"), ("56", "50.00"))),
     {}, "fee"),
    ("emv-large-percent-fee", sg(amount="5.00", tail=(("55", "03"), ("57", "30"))), {}, "fee"),
    ("emv-amount-not-asked", sg(amount="125.00"), _TH, "asked"),
    ("emv-currency-not-asked", sg(currency="840"), {"asked_currency": "SGD"}, "asked"),
    ("emv-payee-swapped-between-frames", sg(name="Evil Trading"),
     {"previous_text": sg()}, "changed"),
    ("emv-amount-swapped-between-frames", sg(amount="12.90"),
     {"previous_text": sg()}, "changed"),
    # -- hidden and look-alike characters in names --
    ("emv-bidi-override-name", sg(name="Joe's Noodles\u202e"), {}, "invisible"),
    ("emv-zero-width-name", sg(name="Joe\u200b's Noodles"), {}, "invisible"),
    ("emv-blank-hangul-filler-name", sg(name="Joe\u3164s Noodles"), {}, "invisible"),
    ("emv-escape-sequence-name", sg(name="Joe\x1b[2JPaid"), {}, "control"),
    ("emv-mixed-script-brand-name", sg(name="\u0410lipay Store"), {}, "mixed-script"),
    ("emv-all-cyrillic-brand-name", sg(name="\u0440\u0430\u0443\u0440\u0430\u04cf"), {},
     "lookalike"),
    ("emv-network-id-typosquat", pix(key="+5521987654321", gui="br.gov.bcb.plx"), {},
     "lookalike"),
    ("emv-network-id-digit-for-letter", sg(account=tlv(("00", "com.a1ipay"),
                                                       ("01", "2088123"))), {}, "lookalike"),
    # -- PIX --
    ("pix-cpf-bad-check-digits", pix(key="52998224726"), {}, "pix-key"),
    ("pix-email-malformed", pix(key="caixa@@padaria"), {}, "pix-key"),
    ("pix-phone-not-brazilian", pix(key="+15551234567"), {}, "pix-key"),
    ("pix-in-dollars", pix(key="+5521987654321", currency="840"), {}, "currency"),
    ("pix-dynamic-url-ip", pix(url="203.0.113.9/qr/v2/abc"), {}, "ip-host"),
    ("pix-dynamic-url-lookalike", pix(url="pix.bcb-gov.br.com/qr/v2/abc"), {}, "lookalike"),
    ("pix-dynamic-url-http", pix(url="http://psp.example.com/qr/v2/abc"), {}, "insecure"),
    # -- UPI --
    ("upi-pa-is-a-link", "upi://pay?pa=https://evil.example/pay&pn=Joe&am=10", {}, "vpa"),
    ("upi-no-payee-address", "upi://pay?pn=Joe%27s%20Noodles&am=250.00", {}, "field"),
    ("upi-foreign-currency", UPI.replace("cu=INR", "cu=USD"), {}, "currency"),
    ("upi-second-pa", UPI + "&pa=evil@okaxis", {}, "duplicate"),
    ("upi-negative-amount", UPI.replace("am=250.00", "am=-250"), {}, "amount"),
    ("upi-bidi-in-name", "upi://pay?pa=joesnoodles@okicici&pn=%E2%80%AEseldooN&am=25", {},
     "invisible"),
    ("upi-lookalike-info-url", UPI + "&url=https%3A%2F%2Fpaytm-secure.in%2Fx", {},
     "lookalike"),
    ("upi-autopay-mandate", "upi://mandate?pa=joesnoodles@okicici&pn=Joe&am=9999&recur=DAILY",
     {}, "unsupported"),
    # -- EPC / SEPA --
    ("epc-iban-digit-changed", epc(*SEPA).replace(IBAN_DE, IBAN_DE[:-1] + "1"), {},
     "checksum"),
    ("epc-iban-wrong-length", epc(*SEPA).replace(IBAN_DE, iban("DE", "37040044053201300")),
     {}, "iban"),
    ("epc-not-euro", epc(*SEPA).replace("EUR12.34", "USD12.34"), {}, "currency"),
    ("epc-unknown-version", epc(*SEPA).replace("BCD\n002", "BCD\n003"), {}, "unsupported"),
    ("epc-bad-charset", epc(*SEPA).replace("002\n1\n", "002\n9\n"), {}, "format"),
    ("epc-v001-without-bic", epc(*SEPA).replace("BCD\n002", "BCD\n001"), {}, "field"),
    ("epc-reference-and-text", epc(*SEPA[:9], "RF18539007547034", "Rechnung"), {}, "field"),
    ("epc-name-over-70", epc(*SEPA[:5], "Stadtwerke " + "X" * 60, *SEPA[6:]), {}, "field"),
    ("epc-thirteen-lines", epc(*SEPA, "info", "extra"), {}, "format"),
    ("epc-cent-fractions", epc(*SEPA).replace("EUR12.34", "EUR12.345"), {}, "amount"),
    ("epc-carriage-return-in-name", epc(*SEPA[:5], "Stadtwerke\rEvil GmbH", *SEPA[6:]), {},
     "control"),
    # -- links --
    ("url-cyrillic-homoglyph", "https://qr.\u0430lipay.com/fkx18304ceg", {}, "lookalike"),
    ("url-punycode", "https://qr." + "\u0430lipay".encode("idna").decode() + ".com/fkx1", {},
     "punycode"),
    ("url-greek-letter-in-tld", "https://www.paypal.c\u03bfm/qr", {}, "mixed-script"),
    ("url-fullwidth-dots", "https://qr.alipay\u3002com/fkx1", {}, "idn"),
    ("url-digit-for-letter", "https://qr.a1ipay.com/fkx18304ceg", {}, "lookalike"),
    ("url-rn-for-m", "https://truernoney.com/pay/123", {}, "lookalike"),
    ("url-extra-word", "https://alipay-secure.cn/pay", {}, "lookalike"),
    ("url-typosquat-swap", "https://qr.aliapy.com/fkx1", {}, "lookalike"),
    ("url-typosquat-missing-letter", "https://www.paypl.com/qr/pay", {}, "lookalike"),
    ("url-typosquat-doubled-letter", "https://paypall.com/qr", {}, "lookalike"),
    ("url-wallet-as-subdomain", "https://qr.alipay.com.evil.cn/fkx1", {}, "lookalike"),
    ("url-brand-on-other-tld", "https://qr.alipay.co/fkx1", {}, "lookalike"),
    ("url-brand-in-path", "https://evil.example/qr.alipay.com/fkx1", {}, "lookalike"),
    ("url-open-redirect", "https://www.google.com/url?q=https://alipay-secure.cn/pay", {},
     "lookalike"),
    ("url-shortener", "https://bit.ly/3AbCdEf", {}, "shortener"),
    ("url-chinese-shortener", "https://t.cn/A6xYz12", {}, "shortener"),
    ("url-userinfo-disguise", "https://qr.alipay.com@evil.example/fkx1", {}, "userinfo"),
    ("url-backslash-disguise", "https://evil.example\\@qr.alipay.com/", {}, "url"),
    ("url-percent-encoded-host", "https://%71r.alipay.com.evil.cn/x", {}, "obfuscated"),
    ("url-ipv4-host", "http://203.0.113.7/pay", {}, "ip-host"),
    ("url-decimal-ip-host", "http://3405803783/pay", {}, "ip-host"),
    ("url-hex-ip-host", "http://0xCB007107/pay", {}, "ip-host"),
    ("url-ipv6-host", "http://[2001:db8::1]/pay", {}, "ip-host"),
    ("url-wallet-over-http", "http://qr.alipay.com/fkx18304ceg", {}, "insecure"),
    ("url-wallet-odd-port", "https://qr.alipay.com:8443/fkx18304ceg", {}, "port"),
    ("url-bidi-reversed-path", "https://evil.example/\u202emoc.yapila.rq", {}, "invisible"),
    ("wallet-opens-foreign-page", "alipays://platformapi/startapp?appId=20000067&url="
                                  "https%3A%2F%2Fevil.example%2Fpay", {}, "embedded-url"),
    ("text-with-lookalike-link", "Scan to pay: www.alipay-secure.cn/qr", {}, "lookalike"),
    # -- schemes that run code --
    ("javascript-link", "javascript:alert(document.cookie)", {}, "scheme"),
    ("javascript-split-by-tab", "java\tscript:alert(1)", {}, "scheme"),
    ("data-link", "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", {}, "scheme"),
    ("file-link", "file:///etc/passwd", {}, "scheme"),
    ("android-intent-link", "intent://pay#Intent;scheme=alipays;package=com.evil;end", {},
     "scheme"),
]
