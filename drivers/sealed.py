"""Sealed files: AES-256-GCM under the device key, for what is personal in the data dir.

A sealed file is one header and one ciphertext (docs/encryption.md):

    MAGIC (6) | version (1) | key id (8) | nonce (12) | AES-256-GCM ciphertext + tag (16)

The header and the file's name (`<parent dir>/<file>`, e.g. `20260101-120000/seg-00001.wav`)
are the authenticated data, so a wrong key, a changed byte, a truncated file or a file
moved to another recording's place is a SealError naming the file, never garbage. The
nonce is random per file (per line in a journal): 2^-32 collision odds after 2^32 seals.

A sealed journal line is `{"sealed":"<base64 of the same layout>"}`: still one JSON object
per line, so a line torn by a power cut does not parse and is skipped as before.

Files that do not start with MAGIC are read as they are: data written before sealing
existed (an upgrade) stays readable; new files are always sealed.
"""

import base64
import binascii
import hashlib
import json
import os
import struct
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from glasses_firmware.drivers.atomic import write_atomic
from glasses_firmware.drivers.errors import GlassesError

MAGIC = b"GLSEAL"
VERSION = 1
KEY_ID_BYTES = 8
NONCE_BYTES = 12
TAG_BYTES = 16
HEADER = struct.Struct(f">{len(MAGIC)}sB{KEY_ID_BYTES}s{NONCE_BYTES}s")
KEY_BYTES = 32
LINE_KEY = "sealed"
# The device key is not used as the AES key itself: a board's OTP key may serve other
# purposes too, and HKDF keeps this use apart from those.
DATA_KEY_INFO = b"glasses sealed files v1"


class SealError(GlassesError, ValueError):
    """A sealed file or line cannot be opened; the message names it and says what to try."""


def is_sealed(data: bytes) -> bool:
    return data.startswith(MAGIC)


def name_of(path: str | os.PathLike) -> str:
    """The name a file is sealed under: its directory's name and its own."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}"


class Sealer:
    """Seals and opens files and journal lines under one device key.

    `source` says where the key came from ("/etc/glasses/device.key", "the OTP customer
    key"), for error messages. Seal and open cost about 1 ms per MB here (docs/encryption.md).
    """

    def __init__(self, device_key: bytes, source: str):
        if len(device_key) != KEY_BYTES:
            raise SealError(f"{source}: a device key is {KEY_BYTES} bytes, got {len(device_key)}")
        data_key = HKDF(hashes.SHA256(), KEY_BYTES, salt=None, info=DATA_KEY_INFO).derive(device_key)
        self._aead = AESGCM(data_key)
        self.key_id = hashlib.sha256(b"glasses key id\0" + data_key).digest()[:KEY_ID_BYTES]
        self.source = source

    @classmethod
    def ephemeral(cls) -> "Sealer":
        """A random key held only in memory (tools that build and read their own data)."""
        return cls(os.urandom(KEY_BYTES), "an in-memory key")

    @property
    def key_id_hex(self) -> str:
        return self.key_id.hex()

    # Whole files.
    def seal(self, data: bytes, name: str) -> bytes:
        header = HEADER.pack(MAGIC, VERSION, self.key_id, os.urandom(NONCE_BYTES))
        return header + self._aead.encrypt(header[-NONCE_BYTES:], data, _aad(header, name))

    def unseal(self, blob: bytes, name: str, where: str) -> bytes:
        """The plaintext of a sealed blob; SealError (naming `where`) if it does not open."""
        if len(blob) < HEADER.size + TAG_BYTES:
            raise SealError(f"{where}: truncated ({len(blob)} bytes, shorter than a sealed "
                            "header); it cannot be recovered: restore it from a copy or delete it")
        header = blob[:HEADER.size]
        magic, version, key_id, nonce = HEADER.unpack(header)
        if magic != MAGIC:
            raise SealError(f"{where}: not a sealed file")
        if version != VERSION:
            raise SealError(f"{where}: sealed in format {version}, which this firmware does not "
                            f"know (it reads {VERSION}); update the firmware")
        if key_id != self.key_id:
            raise SealError(f"{where}: sealed under another key (key id {key_id.hex()}; "
                            f"{self.source} is {self.key_id_hex}): give that device's key "
                            "(glasses export --key FILE)")
        try:
            return self._aead.decrypt(nonce, blob[HEADER.size:], _aad(header, name))
        except InvalidTag:
            raise SealError(f"{where}: does not authenticate: it was changed, truncated or "
                            "moved from another recording since it was written; restore it "
                            "from a copy or delete it") from None

    def write(self, path: str | os.PathLike, data: bytes) -> Path:
        """Seal `data` and write it atomically (drivers/atomic.py) to `path`."""
        return write_atomic(path, self.seal(data, name_of(path)))

    # Journal lines.
    def seal_line(self, record: bytes, name: str) -> bytes:
        """One JSONL line (no newline) holding `record` sealed."""
        blob = base64.b64encode(self.seal(record, name)).decode()
        return json.dumps({LINE_KEY: blob}, separators=(",", ":")).encode()

    def open_line(self, obj: dict, name: str, where: str) -> bytes:
        try:
            blob = base64.b64decode(obj[LINE_KEY], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise SealError(f"{where}: the sealed line is not base64; it was changed") from None
        return self.unseal(blob, name, where)


def is_sealed_line(obj) -> bool:
    return isinstance(obj, dict) and set(obj) == {LINE_KEY}


def read_file(path: str | os.PathLike, sealer: Sealer | None) -> bytes:
    """A data file's contents: opened if sealed, as it is if not (written before sealing).

    OSError if it cannot be read; SealError if it is sealed and does not open (or there is
    no key to open it with).
    """
    path = Path(path)
    data = path.read_bytes()
    if not is_sealed(data):
        return data
    if sealer is None:
        raise SealError(f"{path}: sealed, and no device key was given to open it")
    return sealer.unseal(data, name_of(path), str(path))


def _aad(header: bytes, name: str) -> bytes:
    return header + b"\0" + name.encode()
