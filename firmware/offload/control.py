"""Offload: the setting as the running firmware holds it, and the clients it wraps.

`wrap(client, roles)` gives the object services get instead of the on-board client (the
same client when nothing could ever be offloaded to it). `set`/`clear` change the setting
on disk and in every wrapper at once, so `offload set` from the console takes effect on
the next request, without a restart.
"""

import logging
from pathlib import Path

from glasses_firmware.drivers.errors import ConfigError

from . import settings
from .router import OffloadingModels

log = logging.getLogger("glasses.offload")


class Offload:
    def __init__(self, data_dir: Path, events):
        self.data_dir, self.events = Path(data_dir), events
        self.error = ""
        try:
            self.servers = settings.load(self.data_dir)
        except ConfigError as e:
            # A broken setting must not keep the glasses from working: on-board, and say so.
            self.error = str(e)
            self.servers = {}
            log.warning("offload off: %s", e)
        if self.servers:
            log.info("offload: %s", ", ".join(str(s) for s in self.servers.values()))
        self.wrappers: list[tuple[OffloadingModels, tuple[str, ...]]] = []

    def wrap(self, client, roles: tuple[str, ...]):
        """`client` with `roles` offloaded when set; None stays None (no on-board fallback)."""
        if client is None:
            return None
        wrapper = OffloadingModels(client, self._for(roles), self.events)
        self.wrappers.append((wrapper, roles))
        return wrapper

    def _for(self, roles) -> dict:
        return {r: s for r, s in self.servers.items() if r in roles}

    def _apply(self, servers: dict) -> None:
        settings.save(self.data_dir, servers)
        self.servers, self.error = servers, ""
        for wrapper, roles in self.wrappers:
            wrapper.configure(self._for(roles))

    def set(self, server: settings.Server) -> None:
        self._apply({**self.servers, server.role: server})
        log.info("offload set: %s", server)

    def clear(self, role: str) -> bool:
        """Stop offloading `role` ("all": every role); False if it was not set."""
        roles = settings.ROLES if role == "all" else (role,)
        if not any(r in self.servers for r in roles):
            return False
        self._apply({r: s for r, s in self.servers.items() if r not in roles})
        log.info("offload off: %s", role)
        return True

    def status(self) -> dict:
        """{role: {"server" (token masked), "state", "reason", "served", "fallbacks", ...}}."""
        out = {}
        for wrapper, _ in self.wrappers:
            out.update(wrapper.status())
        for role, server in self.servers.items():
            out.setdefault(role, {"server": server.masked(), "state": "no on-board client",
                                  "reason": "", "served": 0, "fallbacks": 0})
        return {"roles": out, "file": str(settings.path_in(self.data_dir)),
                "error": self.error}
