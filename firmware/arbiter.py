"""Resource arbiter: who may use the camera, microphones, speaker and inference worker.

Owners have declared priorities. An exclusive resource held by a lower-priority owner
is preempted (the holder's `on_preempt` runs) when a higher one asks; otherwise the
request is refused with Busy naming the holder. The microphones are shared: several
owners read them at once. What a claim does to others beyond that is declared in
SUSPENDS, not left to chance.
"""

import logging
from dataclasses import dataclass

from glasses_firmware.drivers.errors import GlassesError

log = logging.getLogger("glasses.arbiter")

RESOURCES = ("camera", "microphones", "speaker", "worker")
SHARED = frozenset({"microphones"})

PRIORITY = {
    "system": 100,      # shutdown, critical battery
    "call": 90,         # a phone call: its speaker and microphones are the caller's
    "video": 80,        # a running video is never cut by a photo or the assistant
    "photo": 70,
    "assistant": 60,
    "meeting": 50,
    "journal": 30,      # interval capture
    "wake_word": 10,
}

# While the key owner holds a claim, these owners are suspended (their listeners
# pause; they resume when the claim is released).
SUSPENDS = {
    "video": ("wake_word",),        # the microphones record the video's sound track, and
                                    # the assistant's voice must not end up in the video
    "assistant": ("wake_word",),    # the assistant's own voice must not wake it again
    "call": ("wake_word",),         # the wearer talks to the caller, not to the glasses; the
                                    # action button is the call's too (app.py), and music is
                                    # paused by the call itself (phone/calls.py)
}


class Busy(GlassesError, RuntimeError):
    """The resource is held by an owner of equal or higher priority."""


@dataclass(eq=False)  # claims are compared and hashed by identity
class Claim:
    owner: str
    resources: tuple[str, ...]
    on_preempt: object = None          # () -> None, called when a higher owner takes over
    released: bool = False


class Arbiter:
    """Grants claims; a claim is released with `release(claim)`."""

    def __init__(self, events=None):
        self.holders: dict[str, list[Claim]] = {r: [] for r in RESOURCES}
        self.events = events

    def acquire(self, owner: str, resources, on_preempt=None) -> Claim:
        if owner not in PRIORITY:
            raise ValueError(f"unknown owner '{owner}'; one of {', '.join(PRIORITY)}")
        resources = tuple(resources)
        for r in resources:
            if r not in RESOURCES:
                raise ValueError(f"unknown resource '{r}'; one of {', '.join(RESOURCES)}")
        victims = []
        for r in resources:
            if r in SHARED:
                continue
            for held in self.holders[r]:
                if held.owner == owner or PRIORITY[held.owner] >= PRIORITY[owner]:
                    raise Busy(f"{r} is in use by {held.owner}; stop it first or try again")
                victims.append(held)
        for v in dict.fromkeys(victims):   # each preempted claim once, in order
            log.info("%s preempts %s", owner, v.owner)
            self.release(v)
            if v.on_preempt is not None:
                v.on_preempt()
        claim = Claim(owner, resources, on_preempt)
        for r in resources:
            self.holders[r].append(claim)
        log.info("%s holds %s", owner, ", ".join(resources))
        return claim

    def release(self, claim: Claim) -> None:
        if claim.released:
            return
        claim.released = True
        for r in claim.resources:
            if claim in self.holders[r]:
                self.holders[r].remove(claim)

    def owners(self, resource: str) -> list[str]:
        return [c.owner for c in self.holders[resource]]

    def suspended(self, owner: str) -> bool:
        """True while a claim that declares it suspends `owner` is held."""
        return any(owner in SUSPENDS.get(c.owner, ())
                   for claims in self.holders.values() for c in claims)

    def snapshot(self) -> dict[str, list[str]]:
        return {r: self.owners(r) for r in RESOURCES}
