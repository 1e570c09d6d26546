"""Links read the way a browser reads them, and which payment wallet a link belongs to.

`split_link()` splits a URL as a browser would (so a look-alike host cannot hide from the
checks); `wallet_of()` names the wallet (Alipay, WeChat Pay) whose scheme or domain it is.
"""

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Link:
    """A URL split the way a browser would split it (tabs and newlines removed first)."""

    scheme: str              # lowercased
    userinfo: str | None     # the part before "@" in the authority, if any
    host: str                # as written (not lowercased, not decoded); "" if none
    port: str | None
    rest: str                # path, query and fragment
    backslash: bool          # a "\" in the authority: browsers read it as "/"


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(.*)", re.S)


def split_link(text: str) -> Link | None:
    """Split `text` as a URL, or None if it does not start with a scheme."""
    text = re.sub(r"[\t\n\r]", "", text.strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b"
                                              "\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16"
                                              "\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f \t\n\r"))
    m = _SCHEME.fullmatch(text)
    if not m:
        return None
    scheme, rest = m.group(1).lower(), m.group(2)
    if not (rest.startswith("//") or rest.startswith("\\\\") or rest.startswith("/\\")
            or rest.startswith("\\/")):
        return Link(scheme, None, "", None, rest, False)
    rest = rest[2:]
    end = len(rest)
    for stop in "/?#\\":
        i = rest.find(stop)
        if i != -1:
            end = min(end, i)
    authority, rest = rest[:end], rest[end:]
    backslash = rest.startswith("\\")
    userinfo, at, hostport = authority.rpartition("@")
    host, port = hostport, None
    if hostport.startswith("["):
        close = hostport.find("]")
        host, tail = (hostport, "") if close == -1 else (hostport[:close + 1], hostport[close + 1:])
        port = tail[1:] if tail.startswith(":") else None
    elif ":" in hostport:
        host, _, port = hostport.rpartition(":")
    return Link(scheme, userinfo if at else None, host, port, rest, backslash)


def host_of(link: Link) -> str:
    """The host lowercased, without a trailing dot."""
    return link.host.lower().rstrip(".")


# --- wallets ------------------------------------------------------------------------
WALLET_SCHEMES = {"alipays": "alipay", "alipay": "alipay", "alipayqr": "alipay",
                  "wxp": "wechat", "weixin": "wechat"}
WALLET_DOMAINS = {"alipay.com": "alipay", "weixin.qq.com": "wechat", "wechat.com": "wechat",
                  "tenpay.com": "wechat"}


def wallet_of(link: Link) -> str | None:
    """"alipay"/"wechat" if the link is a wallet's own scheme or on its own domain."""
    if link.scheme in WALLET_SCHEMES:
        return WALLET_SCHEMES[link.scheme]
    host = host_of(link)
    if link.scheme in ("http", "https"):
        for domain, wallet in WALLET_DOMAINS.items():
            if host == domain or host.endswith("." + domain):
                return wallet
    return None
