"""Reference tools for benchmarks and tests, fetched once into ``<repo>/.tmpmail-tools/``.

    from bench.refs import smtp_source

    tool = smtp_source()
    subprocess.run([tool.path, "-s", "20", "-m", "100", "127.0.0.1:2525"], env=tool.env)

:func:`smtp_source` gives Postfix's ``smtp-source`` load generator from the Debian
package ``postfix``: ``apt-get download postfix`` (no install, no daemon), unpacked
with ``dpkg -x`` into ``.tmpmail-tools/postfix/root``. The binary links against
Postfix's private libraries in ``usr/lib/postfix``, which :attr:`SmtpSource.env` puts on
``LD_LIBRARY_PATH``. The first call downloads and prints what it does on stderr; later
calls, in any process, find the unpacked tree. A file lock makes concurrent first calls
download once.

When the package lists are empty or stale (a fresh machine), ``apt-get download`` fails
and is retried once after ``apt-get update`` (as root). Without apt, an ``smtp-source``
already on the machine (``/usr/sbin`` of an installed Postfix, or ``PATH``) is used.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOOLS_DIR = REPO / ".tmpmail-tools"
POSTFIX_DIR = TOOLS_DIR / "postfix"

#: Where the binary and Postfix's private libraries sit inside the package.
_BINARY = Path("usr/sbin/smtp-source")
_LIBS = Path("usr/lib/postfix")
_APT_TIMEOUT_S = 300.0

#: Shared libraries smtp-source needs from other Debian (bookworm) packages.
LIBRARY_PACKAGES = {
    "libdb-5.3.so": "libdb5.3",
    "libicuuc.so.72": "libicu72",
    "libicudata.so.72": "libicu72",
    "libnsl.so.2": "libnsl2",
}


class RefToolError(RuntimeError):
    """A reference tool cannot be provisioned; the message says what to install."""


@dataclass(frozen=True)
class SmtpSource:
    """Postfix's ``smtp-source``: run ``path`` with ``env``, a full environment for it."""

    path: Path
    env: dict[str, str]


@functools.cache
def smtp_source() -> SmtpSource:
    """Postfix's ``smtp-source``, fetched on first use; checked to start (once a process)."""
    root = _ensure_postfix_tree()
    if root is not None:
        tool = SmtpSource(path=root / _BINARY, env=_with_library_path(root / _LIBS))
    else:
        tool = SmtpSource(path=_installed_smtp_source(), env=dict(os.environ))
    _check_starts(tool)
    return tool


# --- the unpacked tree ---------------------------------------------------------------


def _ensure_postfix_tree() -> Path | None:
    """``.tmpmail-tools/postfix/root``, downloading it if needed; None without apt."""
    root = POSTFIX_DIR / "root"
    stamp = POSTFIX_DIR / "unpacked.json"
    if stamp.exists() and (root / _BINARY).exists():
        return root
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        return None  # not Debian: _installed_smtp_source says what to do
    with file_lock(POSTFIX_DIR / ".lock"):
        if stamp.exists() and (root / _BINARY).exists():
            return root  # another process unpacked it while we waited
        _say(f"fetching smtp-source: apt-get download postfix into {POSTFIX_DIR}")
        began = time.monotonic()
        with tempfile.TemporaryDirectory(dir=POSTFIX_DIR, prefix="download-") as tmp:
            work = Path(tmp)
            deb = _download_postfix(work)
            unpacked = work / "root"
            _run(["dpkg", "-x", str(deb), str(unpacked)], f"dpkg -x {deb.name}")
            if not (unpacked / _BINARY).exists():
                raise RefToolError(f"{deb.name} has no {_BINARY}: not the package expected")
            stamp.unlink(missing_ok=True)
            if root.exists():
                shutil.rmtree(root)
            unpacked.rename(root)
        stamp.write_text(json.dumps({"package": deb.name, "unpacked_at": time.time()}))
        _say(f"unpacked {deb.name} in {time.monotonic() - began:.1f}s")
        return root


def _download_postfix(into: Path) -> Path:
    """The ``postfix_*.deb`` that ``apt-get download`` fetched into ``into``.

    A failure is retried once after ``apt-get update``, which fixes the usual causes
    (no package lists on a fresh machine, or lists that name a version the mirror
    dropped); only root can update them.
    """
    first = _apt_download(into)
    if first.returncode != 0:
        if os.geteuid() != 0:
            raise RefToolError(
                f"`apt-get download postfix` failed:\n{_tail(first)}\n"
                "Run `sudo apt-get update` and retry, or install Postfix "
                "(`apt-get install postfix`, which ships /usr/sbin/smtp-source)."
            )
        _say("apt-get download failed; running apt-get update, then retrying")
        update = _apt(["apt-get", "update", "-q"], into)
        second = _apt_download(into)
        if second.returncode != 0:
            raise RefToolError(
                "`apt-get download postfix` failed, also after `apt-get update`"
                f"{'' if update.returncode == 0 else ' (which failed too)'}:\n"
                f"{_tail(second)}\n{_tail(update)}\n"
                "Check that a Debian mirror is reachable (see /etc/apt/sources.list*)."
            )
    debs = sorted(into.glob("postfix_*.deb"))
    if not debs:
        raise RefToolError(f"`apt-get download postfix` left no postfix_*.deb in {into}")
    return debs[-1]


def _apt_download(into: Path) -> subprocess.CompletedProcess[str]:
    return _apt(["apt-get", "download", "-q", "postfix"], into)


def _apt(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        return subprocess.run(
            cmd,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=_APT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RefToolError(f"`{' '.join(cmd)}` took over {_APT_TIMEOUT_S:.0f}s") from exc


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RefToolError(f"{what} failed (exit {proc.returncode}):\n{_tail(proc)}")


def _tail(proc: subprocess.CompletedProcess[str], lines: int = 15) -> str:
    return "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-lines:])


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _with_library_path(libs: Path) -> dict[str, str]:
    env = dict(os.environ)
    inherited = env.get("LD_LIBRARY_PATH")
    env["LD_LIBRARY_PATH"] = f"{libs}:{inherited}" if inherited else str(libs)
    return env


def _say(message: str) -> None:
    print(f"bench.refs: {message}", file=sys.stderr, flush=True)


# --- without apt, and the start-up check ---------------------------------------------


def _installed_smtp_source() -> Path:
    search = os.pathsep.join(["/usr/sbin", os.environ.get("PATH", "")])
    found = shutil.which("smtp-source", path=search)
    if found is None:
        raise RefToolError(
            "smtp-source is not available: bench.refs fetches it with `apt-get download "
            "postfix` and `dpkg -x`, which needs a Debian-based machine (apt-get, dpkg). "
            "Elsewhere install Postfix, which ships smtp-source, and put it on PATH."
        )
    return Path(found)


def _check_starts(tool: SmtpSource) -> None:
    """Run ``smtp-source`` without arguments: it must load its libraries and print usage.

    It has no version flag; with no host it exits 1 after its usage line, which proves
    that the binary and every library it links against load.
    """
    try:
        proc = subprocess.run(
            [str(tool.path)], env=tool.env, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RefToolError(f"{tool.path} does not start: {exc}") from exc
    output = proc.stdout + proc.stderr
    if "usage:" in output:
        return
    missing = re.findall(r"error while loading shared libraries: (\S+?):", output)
    packages = sorted({LIBRARY_PACKAGES[lib] for lib in missing if lib in LIBRARY_PACKAGES})
    hint = (
        f"Install {' '.join(packages)} (`apt-get install {' '.join(packages)}`)."
        if packages
        else "Check its shared libraries with `ldd` (LD_LIBRARY_PATH as in SmtpSource.env)."
    )
    raise RefToolError(
        f"{tool.path} does not start (exit {proc.returncode}): {output.strip()[:500]}\n{hint}"
    )
