"""The phone as the payment flow sees it, before a phone is linked.

The phone link (Bluetooth, the companion app) implements the Phone port (ports.py); until
a phone is paired, this stands in and every hand-off is a clear "not connected": the
flow then says that nothing was paid, and a product code is read out without a look-up.
"""

from glasses_firmware.drivers.errors import Unreachable

NOT_LINKED = "no phone is linked to the glasses"


class NoPhone:
    name = "no phone"
    connected = False

    async def pay(self, request: dict) -> dict:
        raise Unreachable(f"{NOT_LINKED}, so the payment was not handed to a wallet")

    async def lookup(self, code: str) -> str | None:
        raise Unreachable(f"{NOT_LINKED} to look the product up")
