"""Console PIN: salted scrypt hash in the board file, lockout after repeated failures.

The hash is made at image-build time (`glasses pin-hash`); the PIN itself is never
stored or printed. Lockout time runs on the injected clock, so tests step it.
"""

import hashlib
import hmac
import secrets

from glasses_firmware.drivers.errors import ConfigError

SCRYPT = dict(n=2**14, r=8, p=1, dklen=32)
MAX_FAILURES = 5
LOCKOUT_S = 60.0


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    if not pin.isdigit() or not 4 <= len(pin) <= 12:
        raise ConfigError("a console PIN is 4 to 12 digits")
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, **SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_pin(pin: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
        salt, want = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
    except ValueError:
        raise ConfigError("console.pin_hash is not 'scrypt$SALT$HASH'; "
                          "make one with `glasses pin-hash`") from None
    if scheme != "scrypt":
        raise ConfigError(f"console.pin_hash uses '{scheme}'; only scrypt is supported")
    got = hashlib.scrypt(pin.encode(), salt=salt, **SCRYPT)
    return hmac.compare_digest(got, want)


class PinGate:
    """Who may run what: open when no PIN is set; else locked until `login` succeeds."""

    OPEN_COMMANDS = frozenset({"help", "version", "login"})

    def __init__(self, pin_hash: str, clock):
        self.pin_hash = pin_hash
        self.clock = clock
        self.unlocked = not pin_hash
        self.failures = 0
        self.locked_until = 0.0

    def allows(self, command: str) -> bool:
        return self.unlocked or command in self.OPEN_COMMANDS

    def login(self, pin: str) -> str | None:
        """None on success, else the reason (never the PIN or the hash)."""
        if not self.pin_hash:
            self.unlocked = True
            return None
        now = self.clock.monotonic()
        if now < self.locked_until:
            return f"locked after {MAX_FAILURES} wrong PINs; try again in {self.locked_until - now:.0f} s"
        if verify_pin(pin, self.pin_hash):
            self.unlocked, self.failures = True, 0
            return None
        self.failures += 1
        if self.failures >= MAX_FAILURES:
            self.failures = 0
            self.locked_until = now + LOCKOUT_S
            return f"wrong PIN; locked for {LOCKOUT_S:.0f} s after {MAX_FAILURES} failures"
        return f"wrong PIN ({MAX_FAILURES - self.failures} tries left before a {LOCKOUT_S:.0f} s lockout)"

    def logout(self) -> None:
        self.unlocked = not self.pin_hash
