"""Paying by looking at a merchant's QR code: look, check, offer, confirm by button, hand off.

    "pay this" / "pay 25 yuan" / `pay [AMOUNT [CURRENCY]]`
      -> look (scanner.py: the code seen in two frames, through the interlocked camera)
      -> check (safety.py: checksums, look-alike and shortened links, a payee that changed
         between frames, more than one payment code in view, an amount the wearer did not say)
      -> offer: payee, amount and currency said aloud and printed (EVT payment offer)
      -> confirm: the action button pressed twice, while the glasses are worn, within
         CONFIRM_S; nothing else confirms: not the voice, not the console
      -> hand-off to the phone's wallet (the Phone port), with a deadline
      -> paid / declined / not connected / no answer, said aloud.

Every decision (offered, refused, confirmed, cancelled, expired, paid, declined, failed) is
appended to `payments/decisions.jsonl` with its reasons, fsynced, so what the glasses
agreed to is on record even after a power cut. The flow's state (idle, offered,
handing_off) is the declared table TRANSITIONS; `PaymentMachine.fire` is its only move.
"""

import asyncio
import itertools
import json
import logging
import os
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Callable

from glasses_firmware.drivers.errors import GlassesError, Unreachable

from .. import statetable
from ..ports import Blocking, Clock, EventSink, Phone, Speaks
from ..statetable import Machine
from ..tasks import spawn
from .currencies import CURRENCY_WORDS, spoken
from .results import Payment, ProductCode
from .safety import Verdict, check, check_text
from .scanner import Look, Scanner

log = logging.getLogger("glasses.payments")

CONFIRM_S = 20.0          # from the offer to the button press
HANDOFF_S = 15.0          # the phone's wallet must answer within this
LOOKUP_S = 8.0
CONFIRM_GESTURE = ("action", "double")
HOW_TO_CONFIRM = "press the action button twice"
LOG_NAME = "decisions.jsonl"

IDLE, OFFERED, HANDING_OFF = "idle", "offered", "handing_off"
INITIAL = IDLE
# Every caller checks the state before it moves (only an offer waiting can be confirmed,
# cancelled or expire; only the current offer's hand-off ends it), so an undeclared move is
# a bug in the flow: RuntimeError, never a payment in a state the table does not show.
TRANSITIONS = {
    (IDLE, "offer"): OFFERED,
    (OFFERED, "confirm"): HANDING_OFF,
    (OFFERED, "cancel"): IDLE,
    (OFFERED, "expire"): IDLE,
    (HANDING_OFF, "paid"): IDLE,
    (HANDING_OFF, "declined"): IDLE,
    (HANDING_OFF, "failed"): IDLE,
    (HANDING_OFF, "no_answer"): IDLE,
    # A payment asked for while the wallet has the last one: that hand-off goes on (its
    # answer is recorded and said), and the new offer is the one that waits. Two asked for
    # at once (voice and console): the later offer replaces the earlier.
    (HANDING_OFF, "offer"): OFFERED,
    (OFFERED, "offer"): OFFERED,
}
# The decision that ends an offer (decisions.jsonl) -> the event that ends it here.
END_EVENTS = {"cancelled": "cancel", "expired": "expire", "paid": "paid",
              "declined": "declined", "failed": "failed", "unknown": "no_answer"}


class PaymentMachine(Machine):
    """The flow's state (idle, offered, handing_off); `fire` is the only way it changes."""

    def __init__(self):
        super().__init__(TRANSITIONS, INITIAL, log, "payment")


def mermaid() -> str:
    """The payment flow's state diagram as Mermaid text, for docs/architecture.md."""
    return statetable.mermaid(TRANSITIONS, INITIAL)


class PaymentRefused(GlassesError, ValueError):
    """What was asked cannot be paid (no code, an unsafe code, a bad amount); says why."""

    @property
    def say(self) -> str:
        """Said to the wearer as it is (the assistant's generic apology would hide why)."""
        return str(self)


@dataclass(frozen=True)
class Asked:
    """The amount the wearer stated ("pay 25 yuan"), and the currencies it may be in."""
    amount: Decimal
    currencies: tuple[str, ...] = ()      # empty: not said

    def describe(self) -> str:
        return f"{self.amount} {'/'.join(self.currencies)}".strip()


def parse_asked(amount: str, currency: str | None = None) -> Asked:
    """`pay 25`, `pay 12.50 SGD`, "pay 25 yuan": PaymentRefused if it is not an amount."""
    text = amount.strip().replace(",", "")
    if not re.fullmatch(r"[0-9]{1,7}(\.[0-9]{1,2})?", text):
        raise PaymentRefused(f"'{amount[:20]}' is not an amount: say or type it as digits, "
                             "like 25 or 12.50")
    value = Decimal(text)
    if value <= 0:
        raise PaymentRefused("the amount must be more than zero")
    if currency is None:
        return Asked(value)
    codes = CURRENCY_WORDS.get(currency.strip().lower())
    if codes is None:
        raise PaymentRefused(f"'{currency[:12]}' is not a currency I know; use its code, like "
                             "CNY, INR, EUR or SGD, or its name, like yuan or rupees")
    return Asked(value, codes)


@dataclass
class Offer:
    id: int
    payment: Payment
    amount: Decimal
    currency: str
    deadline: float                       # clock.monotonic()

    def request(self) -> dict:
        """What the phone's wallet is handed (no more than it needs)."""
        p = self.payment
        return {"id": self.id, "scheme": p.scheme, "payee": p.payee, "amount": str(self.amount),
                "currency": self.currency, "account": p.account, "url": p.url,
                "reference": p.reference, "code": p.raw}


class Payments:
    """The payment flow and the product look-up; `state` is idle, offered or handing_off."""

    def __init__(self, scanner: Scanner, phone: Phone, speech: Speaks, events: EventSink,
                 clock: Clock, blocking: Blocking, data_dir: Path, worn: Callable[[], bool],
                 confirm_s: float = CONFIRM_S, handoff_s: float = HANDOFF_S):
        self.scanner, self.phone, self.speech, self.events = scanner, phone, speech, events
        self.clock, self.blocking, self.worn = clock, blocking, worn
        self.confirm_s, self.handoff_s = confirm_s, handoff_s
        self.dir = Path(data_dir) / "payments"
        self.offer: Offer | None = None
        self.machine = PaymentMachine()
        self._ids = itertools.count(int(clock.wall()) % 100000 * 100)
        self._expiry: asyncio.Task | None = None
        self._handoff: asyncio.Task | None = None

    @property
    def state(self) -> str:
        return self.machine.state

    # Looking at a code without paying: "what's this code", `scan`.
    async def scan(self) -> tuple[str, list[str]]:
        """(what to say, what to print) about the codes in view."""
        look = await self.scanner.look(sightings=1)
        if not look.codes:
            return "I can't see a code.", [f"no code in view ({look.frames} frames, "
                                            f"{look.seconds:.1f} s)"]
        said, lines = [], []
        for code in look.codes:
            item, verdict = check_text(code.text, code.symbology)
            if isinstance(item, ProductCode):
                answer = await self._lookup(item)
                said.append(answer)
                lines.append(f"product {item.symbology} {item.digits}: {answer}")
            elif isinstance(item, Payment):
                warn = "" if verdict.ok else " Warning: " + " ".join(verdict.reasons)
                said.append(f"A payment code: {item.describe()}.{warn}")
                lines.append(f"payment {item.scheme}: {item.describe()}"
                             + ("" if verdict.ok else f"; unsafe: {'; '.join(verdict.reasons)}"))
            elif item is None:
                said.append("A code I can't trust: " + " ".join(verdict.reasons))
                lines.append(f"{code.symbology}: refused: {'; '.join(verdict.reasons)}")
            else:
                said.append(item.describe())
                lines.append(f"{code.symbology}: {item.text[:200]}")
        lines.append(f"looked {look.seconds:.2f} s ({look.frames} frames, zxing "
                     f"{look.decode_seconds * 1000:.0f} ms)")
        return " ".join(said), lines

    async def _lookup(self, item: ProductCode) -> str:
        try:
            answer = await _within(self.clock, self.phone.lookup(item.digits), LOOKUP_S)
        except Unreachable as e:
            return f"Product code {item.digits}; {e}."
        except asyncio.TimeoutError:
            return f"Product code {item.digits}; the phone did not answer the look-up."
        if not answer:
            return f"Product code {item.digits}; the phone knows nothing about it."
        return answer

    # Paying.
    async def pay(self, asked: Asked | None = None) -> tuple[str, list[str]]:
        """Look, check and offer; PaymentRefused (logged, with its reasons) if it is unsafe."""
        if self.state != IDLE:
            self.cancel("a new payment was asked for")
        look = await self.scanner.look(enough=_refused)
        payment, verdict = self._judge(look, asked)
        if not verdict.ok:
            self._record("refused", payment, None, None, list(verdict.reasons),
                         kinds=list(verdict.kinds))
            self.events.emit("payment", f"refused: {'; '.join(verdict.reasons)}")
            raise PaymentRefused("Do not pay: " + " ".join(verdict.reasons))
        amount = payment.amount if payment.amount is not None else asked.amount
        currency = payment.currency or (asked.currencies[0] if asked and asked.currencies else None)
        if currency is None:
            self._record("refused", payment, amount, None, ["no currency"], kinds=["currency"])
            raise PaymentRefused("The code names no currency; say the amount with its currency, "
                                 "like pay 25 yuan.")
        offer = Offer(next(self._ids), payment, amount, currency,
                      self.clock.monotonic() + self.confirm_s)
        self.offer = offer
        self.machine.fire("offer", f"offer {offer.id}: {payment.payee} {amount} {currency}")
        self._record("offered", payment, amount, currency, [])
        self.events.emit("payment", f"offer {offer.id} {payment.payee} {amount} {currency} "
                         f"({payment.scheme}); {HOW_TO_CONFIRM} within {self.confirm_s:g} s")
        self._expiry = spawn(self._expire(offer), name="payment-expiry")
        say = (f"Pay {payment.payee}, {spoken(amount, currency)}? To pay, "
               f"{HOW_TO_CONFIRM}.")
        return say, [f"offer {offer.id}: pay {payment.payee} {amount} {currency} "
                     f"({payment.scheme}{', ' + payment.city if payment.city else ''})",
                     f"{HOW_TO_CONFIRM} within {self.confirm_s:g} s to pay; `pay cancel` to cancel"]

    def _judge(self, look: Look, asked: Asked | None) -> tuple[Payment | None, Verdict]:
        """The one payment in view, and whether it is safe to offer."""
        if not look.sightings:
            return None, Verdict(False, ("I can't see a payment code.",), ("none",))
        per_frame = []
        for codes in look.sightings:
            items = [check_text(c.text, c.symbology) for c in codes]
            bad = [v for item, v in items if item is None]
            if bad:
                return None, bad[0]
            payments = [(item, v) for item, v in items if isinstance(item, Payment)]
            if len(payments) > 1 and len({p.key() for p, _ in payments}) > 1:
                return payments[0][0], Verdict(False, (
                    "There is more than one payment code in view; one may be a sticker over "
                    "the real one. Point at one code only, or ask the merchant.",), ("several",))
            if not payments:
                return None, Verdict(False, ("That code is not a payment code.",), ("not_payment",))
            per_frame.append(payments[0])
        if len(per_frame) < self.scanner.sightings and per_frame[0][1].ok:
            return per_frame[-1][0], Verdict(False, (
                "I saw the code only for a moment; hold still and try again.",), ("unsteady",))
        first, (payment, _) = per_frame[0][0], per_frame[-1]
        if len(per_frame) == 1:
            first = None            # refused on sight: no second frame was needed
        asked_currency = None
        if asked is not None and asked.currencies:
            asked_currency = payment.currency if payment.currency in asked.currencies \
                else asked.currencies[0]
        verdict = check(payment, previous=first, asked_amount=asked.amount if asked else None,
                        asked_currency=asked_currency)
        if verdict.ok and payment.amount is None and asked is None:
            verdict = Verdict(False, ("The code has no amount in it; say pay and the amount, "
                                      "like pay 25 yuan.",), ("needs_amount",))
        return payment, verdict

    def gesture(self, button: str, gesture: str) -> bool:
        """A button gesture; True if the payment flow took it (an offer was waiting)."""
        if self.state != OFFERED:
            return False
        if (button, gesture) == CONFIRM_GESTURE:
            self.confirm_by_button()
            return True
        if button == "action" and gesture == "click":
            self.cancel("the action button was pressed once")
            spawn(self.speech.say("Payment cancelled."), name="payment-said")
            return True
        return False

    def confirm_by_button(self) -> None:
        offer = self.offer
        if offer is None or self.state != OFFERED:
            return
        if self.clock.monotonic() > offer.deadline:
            self._end(offer, "expired", ["confirmed too late"])
            return
        if not self.worn():
            # The offer stands: put the glasses on and press again.
            self._record("refused", offer.payment, offer.amount, offer.currency,
                         ["button pressed while the glasses were not worn"], kinds=["not_worn"])
            self.events.emit("payment", f"offer {offer.id}: not worn, not confirmed")
            spawn(self.speech.say("Put the glasses on to confirm a payment."), name="payment-said")
            return
        self.machine.fire("confirm", f"offer {offer.id}: {HOW_TO_CONFIRM} while worn")
        if self._expiry is not None:
            self._expiry.cancel()
        self._record("confirmed", offer.payment, offer.amount, offer.currency,
                     [f"{HOW_TO_CONFIRM} while worn"])
        self.events.emit("payment", f"offer {offer.id} confirmed by the button")
        self._handoff = spawn(self._hand_off(offer), name="payment-handoff")

    def refuse_voice_confirm(self) -> str:
        """Saying "confirm" never pays: the reply says what does."""
        if self.state != OFFERED:
            return "There is no payment to confirm."
        self._record("refused", self.offer.payment, self.offer.amount, self.offer.currency,
                     ["voice cannot confirm a payment"], kinds=["voice_confirm"])
        return f"A voice cannot confirm a payment; {HOW_TO_CONFIRM}."

    def cancel(self, reason: str) -> bool:
        offer = self.offer
        if offer is None or self.state != OFFERED:
            return False
        self._end(offer, "cancelled", [reason])
        return True

    async def _expire(self, offer: Offer) -> None:
        await _until(self.clock, offer.deadline)
        if self.offer is offer and self.state == OFFERED:
            self._end(offer, "expired", [f"no button press within {self.confirm_s:g} s"])
            await self.speech.say("The payment offer expired.")

    async def _hand_off(self, offer: Offer) -> None:
        try:
            answer = await _within(self.clock, self.phone.pay(offer.request()), self.handoff_s)
        except Unreachable as e:
            self._end(offer, "failed", [str(e)])
            await self.speech.say("The phone is not connected. Nothing was paid.")
            return
        except asyncio.TimeoutError:
            # It may or may not have paid: say so rather than guess.
            self._end(offer, "unknown", [f"the phone's wallet did not answer in "
                                         f"{self.handoff_s:g} s"])
            await self.speech.say("The phone did not answer. Check the wallet app before "
                                  "paying again.")
            return
        except GlassesError as e:
            self._end(offer, "failed", [str(e)])
            await self.speech.say("The payment did not go through. Nothing was paid.")
            return
        if answer.get("status") == "paid":
            ref = str(answer.get("reference", ""))[:40]
            self._end(offer, "paid", [f"wallet reference {ref}"])
            await self.speech.say(f"Paid {spoken(offer.amount, offer.currency)} to "
                                  f"{offer.payment.payee}.")
        else:
            why = str(answer.get("reason", "no reason given"))[:120]
            self._end(offer, "declined", [why])
            await self.speech.say(f"The wallet declined the payment: {why}.")

    def _end(self, offer: Offer, decision: str, reasons: list[str]) -> None:
        self._record(decision, offer.payment, offer.amount, offer.currency, reasons)
        self.events.emit("payment", f"{decision} {offer.id}: {offer.payment.payee} "
                         f"{offer.amount} {offer.currency}; {'; '.join(reasons)}")
        if self.offer is offer:            # not an earlier offer's late hand-off
            self.offer = None
            self.machine.fire(END_EVENTS[decision], f"offer {offer.id}: {'; '.join(reasons)}")
            # Only this offer's own timer: a late hand-off must not stop the next offer's.
            if self._expiry is not None and decision != "expired":
                self._expiry.cancel()

    def status(self) -> dict:
        offer = self.offer
        return {"state": self.state, "phone": self.phone.name, "phone_connected":
                bool(self.phone.connected),
                "offer": None if offer is None else {
                    "id": offer.id, "payee": offer.payment.payee, "amount": str(offer.amount),
                    "currency": offer.currency, "scheme": offer.payment.scheme,
                    "seconds_left": round(max(0.0, offer.deadline - self.clock.monotonic()), 1)}}

    # The record.
    def _record(self, decision: str, payment: Payment | None, amount, currency,
                reasons: list[str], kinds: list[str] | None = None) -> None:
        entry = {"time": round(self.clock.wall(), 3), "decision": decision,
                 "id": self.offer.id if self.offer is not None else None,
                 "scheme": payment.scheme if payment else None,
                 "payee": payment.payee if payment else None,
                 "amount": str(amount) if amount is not None else None,
                 "currency": currency, "reasons": reasons, "kinds": kinds or []}
        log.info("payment %s: %s", decision, json.dumps(entry, ensure_ascii=False))
        try:
            _append_line(self.dir / LOG_NAME, entry)
        except OSError as e:
            # The decision stands (a refusal is still a refusal); the record is what failed.
            log.error("payment decision not recorded (%s): %s", e, entry)
            self.events.emit("payment", f"decision not recorded: {e.strerror or e}")

    def decisions(self, last: int = 10) -> list[dict]:
        path = self.dir / LOG_NAME
        if not path.exists():
            return []
        out = []
        for line in path.read_text(errors="replace").splitlines()[-last:]:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue             # a line torn by a power cut
        return out


def _refused(codes) -> bool:
    """A code in view that is refused on sight (no second frame can make it safe)."""
    return any(not check_text(c.text, c.symbology)[1].ok for c in codes)


async def _until(clock: Clock, deadline: float) -> None:
    """Sleep until `deadline` on `clock`, in short steps: a sim clock advanced by `sim
    advance` is noticed, as real time is."""
    while (left := deadline - clock.monotonic()) > 0:
        await clock.asleep(min(left, 0.25))


async def _within(clock: Clock, awaitable, seconds: float):
    """`awaitable`'s result, or asyncio.TimeoutError after `seconds` on `clock` (cancelled)."""
    task = asyncio.ensure_future(awaitable)
    timer = asyncio.ensure_future(_until(clock, clock.monotonic() + seconds))
    try:
        await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise asyncio.TimeoutError


def _append_line(path: Path, entry: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(entry, ensure_ascii=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
