"""`flash.sh fetch --board B`: download the board's base image (resumable) and check its sha256.

The digest is the board file's pinned `image.sha256`; while none is pinned, the
release's published `.sha256` file is fetched and used, and the digest is printed so it
can be pinned. A download whose hash does not match is deleted, never kept.
"""

import re
import subprocess
from pathlib import Path

from .disk import sha256_file
from .tools import FlashError, say, tool_env, which


def _downloader() -> tuple[str, str]:
    for tool in ("curl", "wget"):
        path = which(tool)
        if path:
            return tool, path
    raise FlashError("missing tool: curl or wget; install with: apt-get install curl")


def _get(url: str, dest: Path) -> None:
    tool, path = _downloader()
    if tool == "curl":
        cmd = [path, "--fail", "--location", "--continue-at", "-", "--progress-bar",
               "--retry", "3", "--output", str(dest), url]
    else:
        cmd = [path, "--continue", "--progress=bar:force", "--tries=3", "-O", str(dest), url]
    proc = subprocess.run(cmd, env=tool_env(), timeout=6 * 3600)
    if proc.returncode != 0:
        raise FlashError(f"downloading {url} failed ({tool} exit {proc.returncode}); run fetch again "
                         "to resume")


def published_sha256(url: str) -> str:
    tool, path = _downloader()
    cmd = [path, "--fail", "--silent", "--show-error", "--location", url] if tool == "curl" \
        else [path, "-q", "-O", "-", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=tool_env(), timeout=300)
    match = re.search(r"\b([0-9a-fA-F]{64})\b", proc.stdout)
    if proc.returncode != 0 or not match:
        raise FlashError(f"cannot read the published checksum {url}: "
                         f"{proc.stderr.strip() or 'no sha256 in it'}")
    return match.group(1).lower()


def fetch(board, dest_dir: Path, dry_run: bool = False) -> Path:
    spec = board.image
    if spec is None:
        raise FlashError(f"board {board.name} has no [image] table; nothing to fetch")
    dest = dest_dir / spec.url.rsplit("/", 1)[-1]
    pinned = spec.sha256.lower()
    if dry_run:
        _downloader()
        say(f"fetch (dry run): would download {spec.url}\n  to {dest}\n  and check it against "
            + (f"the pinned sha256 {pinned}" if pinned else f"the published {spec.sha256_url}"))
        return dest
    dest_dir.mkdir(parents=True, exist_ok=True)
    want = pinned or published_sha256(spec.sha256_url)
    if dest.exists():
        if sha256_file(dest, "fetch: checking the existing download") == want:
            say(f"fetch: {dest} is already here and its sha256 matches")
            return dest
        say(f"fetch: {dest} does not match {want}; removing it and downloading again")
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    _get(spec.url, part)
    got = sha256_file(part, "fetch: checking the download")
    if got != want:
        part.unlink()
        raise FlashError(f"{spec.url}: sha256 {got} does not match "
                         f"{'the pinned' if pinned else 'the published'} {want}; the download was "
                         "deleted: run fetch again")
    part.rename(dest)
    say(f"fetch: {dest}: sha256 {got} ok")
    if not pinned:
        say(f"fetch: not pinned yet: put  sha256 = \"{got}\"  in [image] of {board.path}")
    return dest
