"""The wearer's phone as the sim board sees it: a wallet and a shop's product look-up.

The phone link (Bluetooth to the companion app) is not part of the board; on the sim the
phone is part of the physical world, like the scene in front of the camera. `sim phone`
sets what it does: there or gone, a wallet that approves, declines or never answers, and
what a product code looks up to. Every hand-off it receives is kept, so a test can check
what reached the phone and what never did.
"""

import asyncio
import itertools

from drivers.errors import Unreachable

WALLET_ANSWERS = ("approve", "decline", "silent")


class SimPhone:
    """Implements the firmware's Phone port (firmware/ports.py)."""

    name = "sim phone"

    def __init__(self):
        self.present = True
        self.wallet = "approve"
        self.products: dict[str, str] = {}
        self.payments: list[dict] = []      # every payment request handed to the phone
        self.lookups: list[str] = []
        self._refs = itertools.count(1)

    @property
    def connected(self) -> bool:
        return self.present

    def _check(self, what: str) -> None:
        if not self.present:
            raise Unreachable(f"the phone is not connected, so the {what} did not reach it")

    async def pay(self, request: dict) -> dict:
        """{"status": "paid", "reference": ...} or {"status": "declined", "reason": ...}."""
        self._check("payment")
        self.payments.append(dict(request))
        await asyncio.sleep(0.05)                # the wallet's round trip
        if self.wallet == "silent":
            await asyncio.Event().wait()         # the caller's deadline ends this
        if self.wallet == "decline":
            return {"status": "declined", "reason": "the wallet app declined it"}
        return {"status": "paid", "reference": f"SIM-{next(self._refs):06d}"}

    async def lookup(self, code: str) -> str | None:
        """What the phone's shopping app says about a product code; None if it knows nothing."""
        self._check("product look-up")
        self.lookups.append(code)
        await asyncio.sleep(0.05)
        return self.products.get(code)
