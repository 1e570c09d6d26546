"""Offload settings: which server, if any, answers each model role, in `<data>/offload.toml`.

One table per role (`llm`, `asr`, `tts`) naming the server: protocol (`openai` for the
OpenAI HTTP API that llama.cpp's server, Ollama and vLLM speak; `wyoming` for Home
Assistant's speech services), its URL (`https://host:8080/v1`, `tcp://host:10300`), a
model name, an optional bearer token and CA file, and the deadline per request. No table,
no traffic: the firmware opens no network socket for a role that is not set.

The file lives in the data directory (it is the user's, like the photos, and survives
an image update), written atomically with mode 0600 because it may hold a token. The
token is kept like the console PIN: never printed, never logged; `masked()` shows `****`.
"""

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from glasses_firmware.drivers.atomic import atomic_open
from glasses_firmware.drivers.errors import ConfigError

FILE_NAME = "offload.toml"
ROLES = ("llm", "asr", "tts")
PROTOCOLS = {"openai": ("llm", "asr"), "wyoming": ("asr", "tts")}
DEFAULT_PORTS = {"http": 80, "https": 443, "tcp": 10300}
DEFAULT_DEADLINE_S = {"llm": 4.0, "asr": 6.0, "tts": 3.0}
MASK = "****"
KEYS = {"protocol", "url", "model", "token", "ca_file", "deadline_s"}


@dataclass(frozen=True)
class Server:
    """One role's server. `deadline_s`: to the first token (LLM) or the whole result
    (ASR, TTS), and the longest gap between two streamed pieces."""

    role: str
    protocol: str
    url: str
    model: str = ""
    token: str = ""
    ca_file: str = ""
    deadline_s: float = 4.0

    def __post_init__(self):
        if self.role not in ROLES:
            raise ConfigError(f"offload role '{self.role}' is not one of {', '.join(ROLES)}")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"offload protocol '{self.protocol}' is not one of "
                              f"{', '.join(PROTOCOLS)}")
        if self.role not in PROTOCOLS[self.protocol]:
            raise ConfigError(f"the {self.protocol} protocol has no {self.role} here; "
                              f"use it for {' or '.join(PROTOCOLS[self.protocol])}")
        parts = urlsplit(self.url)
        schemes = ("tcp",) if self.protocol == "wyoming" else ("http", "https")
        if parts.scheme not in schemes or not parts.hostname:
            example = "tcp://HOST:10300" if self.protocol == "wyoming" else "https://HOST:8080/v1"
            raise ConfigError(f"offload {self.role} url '{self.url}' is not a "
                              f"{'/'.join(schemes)} URL; e.g. {example}")
        try:
            parts.port
        except ValueError:
            raise ConfigError(f"offload {self.role} url '{self.url}' has a bad port") from None
        if not 0.1 <= float(self.deadline_s) <= 120:
            raise ConfigError(f"offload {self.role} deadline_s {self.deadline_s} is not "
                              "between 0.1 and 120 seconds")
        if any(c in self.token for c in "\r\n") or len(self.token) > 4096:
            raise ConfigError(f"offload {self.role} token must be one line under 4 KiB")
        if self.ca_file and not Path(self.ca_file).is_file():
            raise ConfigError(f"offload {self.role} ca_file '{self.ca_file}' is not a file")

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or DEFAULT_PORTS[parts.scheme]

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "https"

    @property
    def path(self) -> str:
        """The URL's path without a trailing slash ("/v1")."""
        return urlsplit(self.url).path.rstrip("/")

    def masked(self) -> dict:
        """The setting as shown by `offload` and logs: the token as `****`."""
        d = dataclasses.asdict(self)
        d["token"] = MASK if self.token else ""
        return d

    def __repr__(self) -> str:      # a stray %r in a log line must not leak the token
        return f"Server({self.role} {self.protocol} {self.url} model={self.model!r})"

    __str__ = __repr__


def path_in(data_dir: Path) -> Path:
    return Path(data_dir) / FILE_NAME


def load(data_dir: Path) -> dict[str, Server]:
    """{role: Server} from the data directory's offload.toml; {} if there is none.

    ConfigError naming the file and the key for anything it cannot use."""
    path = path_in(data_dir)
    if not path.exists():
        return {}
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML ({e}); fix it or remove it "
                          "(`offload off ROLE`)") from None
    servers = {}
    for role, table in raw.items():
        if role not in ROLES or not isinstance(table, dict):
            raise ConfigError(f"{path}: [{role}] is not a role; roles are {', '.join(ROLES)}")
        unknown = set(table) - KEYS
        if unknown:
            raise ConfigError(f"{path}: [{role}] has unknown key {sorted(unknown)[0]!r}; "
                              f"keys are {', '.join(sorted(KEYS))}")
        for key in ("protocol", "url"):
            if key not in table:
                raise ConfigError(f"{path}: [{role}] needs {key}")
        try:
            servers[role] = Server(role=role, **table)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{path}: [{role}]: {e}") from None
    return servers


def save(data_dir: Path, servers: dict[str, Server]) -> Path:
    """Write offload.toml atomically, readable by the firmware's user only (it may hold a token)."""
    lines = []
    for role in ROLES:
        s = servers.get(role)
        if s is None:
            continue
        lines.append(f"[{role}]")
        for f in dataclasses.fields(Server):
            value = getattr(s, f.name)
            if f.name == "role" or value == "":
                continue
            # A JSON string is a valid TOML basic string (same escapes).
            lines.append(f"{f.name} = {json.dumps(value, ensure_ascii=False)}")
        lines.append("")
    path = path_in(data_dir)
    with atomic_open(path, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write("\n".join(lines))
    return path


def read_token_file(path: str) -> str:
    """The token in a file (its first line); ConfigError if it is missing or empty."""
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the token file {path}: {e}") from None
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not token:
        raise ConfigError(f"the token file {path} is empty")
    return token
