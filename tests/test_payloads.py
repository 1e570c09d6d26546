"""Payment payloads and quishing checks: pure functions, no hardware, no sim board."""

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glasses_firmware.drivers.errors import GlassesError
from glasses_firmware.firmware.payments.emvco import crc16_ccitt_false
from glasses_firmware.firmware.payments.payloads import parse
from glasses_firmware.firmware.payments.results import Other, PayloadError, Payment, ProductCode
from glasses_firmware.firmware.payments.safety import Verdict, check, check_text, distance, registrable
from tests.payment_corpus import (IBAN_DE, MALICIOUS, SEPA, UPI, VALID, cpf, ean, emv, epc,
                                  pix, sg, tlv)

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


# --- honest codes -------------------------------------------------------------------
@pytest.mark.parametrize("name,text", VALID, ids=[v[0] for v in VALID])
def test_every_valid_code_is_accepted(name, text):
    item, verdict = check_text(text)
    assert verdict == Verdict(True, (), ()), verdict
    assert item is not None and item.describe()


def test_emvco_paynow_reads_payee_city_amount_and_reference():
    p = parse(sg(tail=(("62", tlv(("05", "INV-1042"))),)))
    assert (p.scheme, p.payee, p.city, p.amount, p.currency, p.reference) == (
        "emvco", "Joe's Noodles", "Singapore", Decimal("12.50"), "SGD", "INV-1042")
    assert p.describe() == "Pay Joe's Noodles, Singapore, 12.50 Singapore dollars via PayNow"


def test_emvco_with_an_unknown_network_is_said_as_emvco_qr():
    p = parse(emv(("26", tlv(("00", "com.example.pay"), ("01", "M42"))), ("53", "702"),
                  ("54", "12.5"), ("58", "SG"), ("59", "Joe's Noodles"), ("60", "Singapore")))
    assert p.describe() == "Pay Joe's Noodles, Singapore, 12.50 Singapore dollars via EMVCo QR"
    assert p.account == "M42"


def test_emvco_without_amount_leaves_it_to_the_payer():
    p = parse(sg(amount=None))
    assert p.amount is None and check(p).ok
    assert "no amount" in p.describe()
    # the wearer says an amount: nothing in the code contradicts it
    assert check(p, asked_amount=Decimal("9.99"), asked_currency="SGD").ok


def test_promptpay_without_a_name_speaks_the_account():
    p = parse(dict(VALID)["emvco-promptpay-no-name"])
    assert p.payee == "PromptPay account 0066812345678" and p.currency == "THB"


def test_pix_static_and_dynamic():
    static = parse(pix(key="+5521987654321"))
    assert (static.scheme, static.account, static.amount, static.currency) == (
        "pix", "+5521987654321", Decimal("66.60"), "BRL")
    assert parse(pix(key=cpf("529982247"))).account == "52998224725"
    dynamic = parse(pix(url="pix.psp.example.com/qr/v2/abc", amount=None))
    assert dynamic.url == "https://pix.psp.example.com/qr/v2/abc" and dynamic.amount is None


def test_pix_accepts_the_upper_case_network_id():
    assert parse(pix(key="+5521987654321", gui="BR.GOV.BCB.PIX")).scheme == "pix"


def test_upi_link():
    p = parse(UPI)
    assert (p.scheme, p.payee, p.account, p.amount, p.currency, p.reference) == (
        "upi", "Joe's Noodles", "joesnoodles@okicici", Decimal("250.00"), "INR", "Lunch")
    assert p.describe() == "Pay Joe's Noodles, 250.00 Indian rupees via UPI"


def test_epc_girocode_lf_and_crlf_read_the_same():
    lf, crlf = parse(epc(*SEPA)), parse("\r\n".join(SEPA))
    for p in (lf, crlf):
        assert (p.scheme, p.payee, p.account, p.amount, p.currency, p.reference) == (
            "epc", "Stadtwerke Musterstadt", IBAN_DE, Decimal("12.34"), "EUR",
            "Rechnung 2024-117")
    assert IBAN_DE == "DE89370400440532013000"


def test_wallet_links_have_no_payee_or_amount_inside():
    alipay = parse("https://qr.alipay.com/fkx18304ceg0tzwpm3qbf6c")
    wechat = parse("wxp://f2f0bWY8uuXuxoAVRkIlHRZRUrqxTlzeKpRq")
    assert (alipay.scheme, alipay.payee, alipay.amount) == ("alipay", "an Alipay merchant", None)
    assert (wechat.scheme, wechat.payee, wechat.amount) == ("wechat", "a WeChat Pay merchant",
                                                            None)


@pytest.mark.parametrize("symbology,body", [("EAN-13", "400638133393"), ("EAN13", "590123412345"),
                                            ("UPC-A", "03600029145"), ("EAN-8", "9638507"),
                                            ("BarcodeFormat.EAN8", "5512345")])
def test_product_codes_verify_their_check_digit(symbology, body):
    code = parse(ean(body), symbology)
    assert isinstance(code, ProductCode) and code.digits == ean(body)
    assert check(code).ok and "not a payment" in code.describe()
    wrong = body + str((int(ean(body)[-1]) + 1) % 10)
    with pytest.raises(PayloadError) as e:
        parse(wrong, symbology)
    assert e.value.kind == "checksum"


def test_upc_e_is_checked_on_its_expansion():
    assert parse("01234565", "UPC-E").digits == "01234565"
    with pytest.raises(PayloadError):
        parse("01234566", "UPC-E")


def test_other_codes_are_not_payments():
    assert parse("https://www.example.com/menu") == Other("https://www.example.com/menu")
    assert parse("4006381333931") == Other("4006381333931")      # digits in a QR: just text
    assert parse("https://www.example.com/x").describe() == \
        "Not a payment code: a link to www.example.com"


# --- the error type -----------------------------------------------------------------
def test_payload_error_is_a_glasses_error_and_a_value_error_with_a_kind():
    with pytest.raises(PayloadError) as e:
        parse(sg().replace("540512.50", "540592.50"))
    assert isinstance(e.value, GlassesError) and isinstance(e.value, ValueError)
    assert e.value.kind == "checksum"
    assert "do not pay" in str(e.value) and "computed" in str(e.value)


def test_crc_is_ccitt_false():
    assert crc16_ccitt_false(b"123456789") == 0x29B1


# --- tricks -------------------------------------------------------------------------
@pytest.mark.parametrize("name,text,kw,kind", MALICIOUS, ids=[m[0] for m in MALICIOUS])
def test_every_trick_is_refused_with_its_kind(name, text, kw, kind):
    _, verdict = check_text(text, **kw)
    assert not verdict.ok
    assert any(kind in k for k in verdict.kinds), verdict
    assert len(verdict.reasons) >= 1 and all(r.endswith(".") for r in verdict.reasons)


def test_corpus_is_large_distinct_and_fits_in_a_qr_code():
    names = [m[0] for m in MALICIOUS]
    assert len(set(names)) == len(names) >= 50
    assert len({m[1] for m in MALICIOUS}) == len(MALICIOUS)
    for _, text, *_ in VALID + MALICIOUS:
        assert len(text.encode("utf-8")) <= 400


def test_changed_payee_with_payment_objects():
    first, second = parse(sg()), parse(sg(name="Evil Trading"))
    assert check(first, previous=parse(sg())).ok
    verdict = check(second, previous=first)
    assert verdict.kinds == ("changed",)
    assert verdict.reasons == ("The payee changed from Joe's Noodles to Evil Trading "
                               "between frames.",)


def test_asked_amount_equal_in_value_passes():
    assert check(parse(sg(amount="12.5")), asked_amount=Decimal("12.50"),
                 asked_currency="sgd").ok


def test_hand_built_payment_amounts_are_checked():
    base = dict(scheme="upi", payee="Joe", currency="INR", account="joe@okicici")
    for amount in (Decimal("NaN"), Decimal("-1"), Decimal("0"), Decimal("1e30")):
        assert check(Payment(amount=amount, **base)).kinds == ("amount",)
    assert check(Payment(amount=Decimal("999999"), **base)).ok
    assert check(Payment(amount=Decimal("5000000"), **{**base, "currency": "IDR"})).ok


def test_check_text_turns_errors_into_verdicts():
    item, verdict = check_text(sg().replace("Joe", "Jim"))
    assert item is None and verdict.kinds == ("checksum",) and not verdict.ok


def test_helpers():
    assert distance("alipay", "aliapy") == 1 and distance("paypal", "paypl") == 1
    assert registrable("qr.alipay.com.evil.cn") == "evil.cn"
    assert registrable("pix.banco.com.br") == "banco.com.br"


# --- fuzz ---------------------------------------------------------------------------
PAYLOADS = [text for _, text in VALID]
FLIPPABLE = [text for name, text in VALID if name.startswith(("emvco", "pix", "epc"))]


def _mutate(text: str, ops) -> str:
    for op, pos, char in ops:
        i = pos % (len(text) + 1)
        if op == 0:
            text = text[:i] + char + text[i + 1:]
        elif op == 1:
            text = text[:i] + char + text[i:]
        else:
            text = text[:i] + text[i + 1:]
    return text


_MUTATIONS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 500),
                                st.characters(codec="utf-8")), min_size=1, max_size=4)


def _parses_or_payload_error(text, symbology="QRCode"):
    try:
        parse(text, symbology)
    except PayloadError:
        pass
    item, verdict = check_text(text, symbology)
    assert isinstance(verdict, Verdict) and "internal" not in verdict.kinds


@FUZZ
@given(st.text(max_size=300), st.sampled_from(["QRCode", "EAN-13", "UPC-A", "EAN-8", "UPC-E"]))
def test_fuzz_random_text_only_raises_payload_error(text, symbology):
    _parses_or_payload_error(text, symbology)


@FUZZ
@given(st.sampled_from(PAYLOADS), _MUTATIONS)
def test_fuzz_mutated_payloads_only_raise_payload_error(text, ops):
    _parses_or_payload_error(_mutate(text, ops))


@FUZZ
@given(st.sampled_from(FLIPPABLE), st.integers(0, 500), st.characters(codec="utf-8"))
def test_one_changed_character_is_never_the_same_payment(text, pos, char):
    i = pos % len(text)
    if text[i] == char:
        return
    original = parse(text)
    item, verdict = check_text(text[:i] + char + text[i + 1:])
    assert not isinstance(item, Payment) or not verdict.ok or item.key() != original.key()


def test_every_single_digit_change_of_an_emvco_or_epc_code_is_caught_or_different():
    for text in (sg(), epc(*SEPA)):
        original = parse(text)
        for i in range(len(text)):
            for char in "0179AaZ \n":
                if text[i] == char:
                    continue
                item, verdict = check_text(text[:i] + char + text[i + 1:])
                same = isinstance(item, Payment) and item.key() == original.key()
                assert not same or not verdict.ok


@pytest.mark.parametrize("text", ["https://www.santander.com.br", "https://paypal.me/joe",
                                  "https://weixin.qq.com/r/abc", "https://QR.ALIPAY.COM/fkx1",
                                  "https://webchat.example.com", "tel:+6591234567",
                                  "BEGIN:VCARD\nFN:Joe\nEND:VCARD"])
def test_genuine_and_ordinary_codes_raise_no_alarm(text):
    assert check_text(text)[1].ok
