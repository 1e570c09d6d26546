"""Read a CTranslate2 `model.bin` into numpy arrays, without ctranslate2.

ctranslate2 can write this format but not read weights back out, so the Whisper model
that arrives as a faster-whisper package is read here. Layout (binary version 6, all
little-endian): u32 version; string spec name; u32 spec revision; u32 variable count; per
variable: string name, u8 rank, u32 per dimension, u8 dtype, u32 byte count, raw bytes;
then u32 alias count and (alias, target) string pairs. A string is a u16 length that
counts a trailing NUL, then the bytes. Arrays are views of one memory map (no copies).
"""

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .verify import ModelCorrupt

SUPPORTED_VERSIONS = (6,)
# ctranslate2's DataType enum, in order.
DTYPES = (np.dtype("<f4"), np.dtype("i1"), np.dtype("<i2"), np.dtype("<i4"), np.dtype("<f2"),
          "bfloat16")


class Ct2FormatError(ModelCorrupt):
    """The file is not a CTranslate2 model.bin this reader understands; says where it broke."""


@dataclass
class Ct2Model:
    version: int
    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str]

    def get(self, name: str) -> np.ndarray:
        """A variable by name, following an alias; Ct2FormatError naming it if absent."""
        name = self.aliases.get(name, name)
        if name not in self.variables:
            raise Ct2FormatError(f"the {self.spec} model has no variable {name!r}")
        return self.variables[name]


class _Cursor:
    def __init__(self, buf, path: Path):
        self.buf, self.off, self.path = buf, 0, path

    def take(self, n: int, what: str):
        if self.off + n > len(self.buf):
            raise Ct2FormatError(f"{self.path}: truncated at byte {self.off} while reading {what} "
                                 f"({n} bytes wanted, {len(self.buf) - self.off} left); the file is "
                                 "incomplete or not a CTranslate2 model.bin")
        view = self.buf[self.off:self.off + n]
        self.off += n
        return view

    def unpack(self, fmt: str, what: str) -> int:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        n = self.unpack("<H", f"the length of {what}")
        raw = bytes(self.take(n, what))
        if n == 0 or raw[-1] != 0:
            raise Ct2FormatError(f"{self.path}: {what} at byte {self.off - n} is not a NUL-terminated "
                                 "string; not a CTranslate2 model.bin")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise Ct2FormatError(f"{self.path}: {what} at byte {self.off - n} is not UTF-8") from None


def read(path: Path) -> Ct2Model:
    """Every variable and alias of `path`; Ct2FormatError says what is wrong and where."""
    path = Path(path)
    with open(path, "rb") as f:
        if path.stat().st_size == 0:
            raise Ct2FormatError(f"{path}: empty file; not a CTranslate2 model.bin")
        buf = memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
    c = _Cursor(buf, path)
    version = c.unpack("<I", "the binary version")
    if version not in SUPPORTED_VERSIONS:
        raise Ct2FormatError(f"{path}: CTranslate2 binary version {version}; this reader knows "
                             f"{', '.join(map(str, SUPPORTED_VERSIONS))}. Is it a model.bin?")
    spec = c.string("the spec name")
    revision = c.unpack("<I", "the spec revision")
    variables = {}
    for index in range(c.unpack("<I", "the variable count")):
        name = c.string(f"the name of variable {index}")
        rank = c.unpack("<B", f"the rank of {name}")
        shape = tuple(c.unpack("<I", f"the shape of {name}") for _ in range(rank))
        code = c.unpack("<B", f"the dtype of {name}")
        if code >= len(DTYPES):
            raise Ct2FormatError(f"{path}: variable {name} has unknown dtype code {code}")
        nbytes = c.unpack("<I", f"the size of {name}")
        raw = c.take(nbytes, f"the data of {name}")
        variables[name] = _array(raw, DTYPES[code], shape, name, path)
    aliases = {}
    if c.off < len(buf):
        for index in range(c.unpack("<I", "the alias count")):
            alias = c.string(f"alias {index}")
            aliases[alias] = c.string(f"the target of alias {alias}")
    if c.off != len(buf):
        raise Ct2FormatError(f"{path}: {len(buf) - c.off} bytes left over after the last alias; "
                             "not a CTranslate2 model.bin of a known version")
    for alias, target in aliases.items():
        if target not in variables:
            raise Ct2FormatError(f"{path}: alias {alias} points at {target}, which is not a variable")
    return Ct2Model(version, spec, revision, variables, aliases)


def _array(raw, dtype, shape: tuple[int, ...], name: str, path: Path) -> np.ndarray:
    count = int(np.prod(shape)) if shape else 1
    if dtype == "bfloat16":
        if len(raw) != 2 * count:
            raise Ct2FormatError(f"{path}: variable {name} has {len(raw)} bytes for shape {shape} bfloat16")
        # bfloat16 is the top half of a float32: widen it (this one copy is unavoidable).
        widened = np.frombuffer(raw, "<u2").astype(np.uint32) << 16
        return widened.view(np.float32).reshape(shape)
    if len(raw) != dtype.itemsize * count:
        raise Ct2FormatError(f"{path}: variable {name} has {len(raw)} bytes, but shape {shape} of "
                             f"{dtype} needs {dtype.itemsize * count}")
    return np.frombuffer(raw, dtype).reshape(shape)
