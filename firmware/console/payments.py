"""Console commands for codes and payments: `scan`, `pay ...`.

`pay` makes the same offer "pay this" makes by voice; it never pays by itself. Only the
action button pressed twice while the glasses are worn confirms (payments/flow.py), so a
console on the serial port can show an offer but cannot complete one.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..ports import Blocking
from .commands import Command, CommandError, as_json, is_count, take_flag
from .features import ActionPorts, run_action

if TYPE_CHECKING:
    from ..payments.flow import Payments
    from ..voice.actions import ActionRouter

PAY_USAGE = "pay [AMOUNT [CURRENCY]] | pay cancel | pay status [--json] | pay log [N]"


@dataclass(frozen=True)
class PayPorts:
    """`pay` offers through the router (as "pay this" does); status and log come from the flow."""

    router: "ActionRouter"
    payments: "Payments"
    blocking: Blocking


async def cmd_scan(session, ports: ActionPorts, args):
    if args:
        raise CommandError("usage: scan")
    return await run_action(ports.router, "scan", "scan", {})


async def cmd_pay(session, ports: PayPorts, args):
    payments = ports.payments
    args, js = take_flag(args, "--json")
    match args:
        case []:
            return await run_action(ports.router, "pay", "pay", {})
        case ["cancel"]:
            return await run_action(ports.router, "pay", "pay_cancel", {})
        case ["confirm"]:
            raise CommandError("the console cannot confirm a payment: press the action button "
                               "twice while wearing the glasses")
        case ["status"]:
            status = payments.status()
            if js:
                return as_json(status)
            offer = status["offer"]
            head = f"payments {status['state']}; phone: {status['phone']} " \
                   f"({'connected' if status['phone_connected'] else 'not connected'})"
            if offer is None:
                return [head]
            return [head, f"offer {offer['id']}: {offer['payee']} {offer['amount']} "
                          f"{offer['currency']} ({offer['scheme']}), {offer['seconds_left']} s left"]
        case ["log"] | ["log", _]:
            last = _count(args[1]) if len(args) == 2 else 10
            rows = await ports.blocking.run(payments.decisions, last)
            if js:
                return as_json(rows)
            return [f"{r.get('decision')} {r.get('payee')} {r.get('amount')} {r.get('currency')}: "
                    f"{'; '.join(r.get('reasons') or [])}" for r in rows] or ["no payment decisions yet"]
        case [amount] | [amount, _]:
            currency = args[1] if len(args) == 2 else None
            return await run_action(ports.router, "pay", "pay", {"amount": amount, "currency": currency})
    raise CommandError(f"usage: {PAY_USAGE}")


COMMANDS = (
    Command("scan", "scan", "read the QR or product codes in view (through the privacy LED)",
            cmd_scan, ActionPorts),
    Command("pay", PAY_USAGE, "offer to pay the merchant QR code in view; the button confirms",
            cmd_pay, PayPorts),
)


def _count(text: str) -> int:
    if not is_count(text) or not 1 <= int(text) <= 1000:
        raise CommandError(f"N must be 1 to 1000, got '{text[:12]}'; usage: {PAY_USAGE}")
    return int(text)
