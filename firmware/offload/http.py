"""A small HTTP/1.1 client on asyncio streams, for the OpenAI-compatible servers.

One connection per request (`Connection: close`): a request is seconds of generation, so a
handshake saved is nothing, and a connection that is never reused is never found dead.
Bodies are read by Content-Length, chunked transfer coding, or to the end of the stream.
Every read has the caller's deadline; a server that accepts and says nothing times out.
The token goes only into the Authorization header, never into an error message.
"""

import asyncio
import json
import ssl
from dataclasses import dataclass, field

from glasses_firmware.drivers.errors import GlassesError

MAX_HEADER_BYTES = 64 * 1024
MAX_LINE_BYTES = 1024 * 1024


class OffloadError(GlassesError, ConnectionError):
    """The server could not be reached, refused the request, or broke off; says which."""


class OffloadTimeout(OffloadError, TimeoutError):
    """The server did not answer within the deadline."""


def tls_context(ca_file: str = "") -> ssl.SSLContext:
    """The system's trust store, plus `ca_file` for a self-signed server."""
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    return ctx


@dataclass
class Response:
    status: int
    reason: str
    headers: dict = field(default_factory=dict)
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    _left: int | None = None        # Content-Length still to read, None: unknown
    _chunked: bool = False
    _chunk_left: int = 0
    _done: bool = False

    async def read_some(self, timeout_s: float) -> bytes:
        """The next bytes of the body (b"" at its end); OffloadTimeout past `timeout_s`."""
        try:
            return await asyncio.wait_for(self._read_some(), timeout_s)
        except asyncio.TimeoutError:
            raise OffloadTimeout(f"the server sent nothing for {timeout_s:g} s") from None
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            raise OffloadError(f"the connection broke mid-answer ({type(e).__name__})") from None

    async def _read_some(self) -> bytes:
        if self._done:
            return b""
        if self._chunked:
            if self._chunk_left == 0:
                size_line = await self.reader.readline()
                if not size_line:
                    raise OffloadError("the connection closed inside a chunked answer")
                self._chunk_left = int(size_line.split(b";")[0].strip() or b"0", 16)
                if self._chunk_left == 0:
                    self._done = True
                    return b""
            data = await self.reader.read(min(self._chunk_left, 65536))
            if not data:
                raise OffloadError("the connection closed inside a chunk")
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                await self.reader.readexactly(2)          # the CRLF after each chunk
            return data
        if self._left is not None:
            if self._left == 0:
                self._done = True
                return b""
            data = await self.reader.read(min(self._left, 65536))
            if not data:
                raise OffloadError(f"the connection closed {self._left} bytes short of the answer")
            self._left -= len(data)
            return data
        data = await self.reader.read(65536)
        if not data:
            self._done = True
        return data

    async def body(self, timeout_s: float, limit: int = 16 * 1024 * 1024) -> bytes:
        out = bytearray()
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while True:
            data = await self.read_some(max(0.01, end - loop.time()))
            if not data:
                return bytes(out)
            out += data
            if len(out) > limit:
                raise OffloadError(f"the answer is over {limit} bytes")

    async def json(self, timeout_s: float):
        raw = await self.body(timeout_s)
        try:
            return json.loads(raw)
        except ValueError:
            raise OffloadError(f"the server's answer is not JSON: {raw[:80]!r}") from None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def request(server, method: str, path: str, body: bytes = b"",
                  content_type: str = "application/json", timeout_s: float = 5.0) -> Response:
    """Send one request to `server` (settings.Server) and read the status and headers.

    OffloadTimeout if connecting and the headers take longer than `timeout_s`; OffloadError
    for a refused connection, a TLS failure or a malformed answer. The caller reads the
    body and must `close()` the response."""
    try:
        return await asyncio.wait_for(_request(server, method, path, body, content_type), timeout_s)
    except asyncio.TimeoutError:
        raise OffloadTimeout(f"{server.host}:{server.port} did not answer within "
                             f"{timeout_s:g} s") from None
    except ssl.SSLError as e:
        raise OffloadError(f"TLS with {server.host}:{server.port} failed ({e.reason or e}); "
                           "for a self-signed server set its CA file") from None
    except (OSError, asyncio.IncompleteReadError, ValueError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise OffloadError(f"cannot reach {server.host}:{server.port} ({why})") from None


async def _request(server, method, path, body, content_type) -> Response:
    ctx = tls_context(server.ca_file) if server.tls else None
    reader, writer = await asyncio.open_connection(server.host, server.port, ssl=ctx,
                                                   limit=MAX_LINE_BYTES)
    try:
        host = server.host if server.port in (80, 443) else f"{server.host}:{server.port}"
        head = [f"{method} {server.path}{path} HTTP/1.1", f"Host: {host}",
                "Connection: close", "Accept: application/json, text/event-stream",
                "User-Agent: glasses-offload"]
        if server.token:
            head.append(f"Authorization: Bearer {server.token}")
        if body or method == "POST":
            head += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        status_line = await reader.readline()
        parts = status_line.decode("latin-1").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise OffloadError(f"{server.host}:{server.port} does not speak HTTP "
                               f"(it sent {status_line[:40]!r})")
        headers, size = {}, 0
        while True:
            line = await reader.readline()
            size += len(line)
            if size > MAX_HEADER_BYTES:
                raise OffloadError("the server's headers are over 64 KiB")
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        resp = Response(int(parts[1]), parts[2].strip() if len(parts) > 2 else "", headers,
                        reader, writer)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            resp._chunked = True
        elif headers.get("content-length", "").isdigit():
            resp._left = int(headers["content-length"])
        return resp
    except BaseException:
        writer.close()
        raise


def error_text(status: int, reason: str, raw: bytes) -> str:
    """The server's complaint, short: OpenAI-style {"error": {"message"}} or the reason."""
    try:
        err = json.loads(raw).get("error")
        msg = err.get("message") if isinstance(err, dict) else err
    except (ValueError, AttributeError):
        msg = None
    return f"HTTP {status} {reason}" + (f": {str(msg)[:160]}" if msg else "")
