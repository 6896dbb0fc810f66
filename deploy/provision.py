"""Provisioning: fetch Kafka's jars with Maven and build the FerretDB stand-in with Go.

Both steps are idempotent and quick when the tools' own caches are warm (``~/.m2`` for
Maven; the Go module and build caches). Results go under the state directory:

* ``<state>/kafka/libs/*.jar``, from ``deploy/kafka/pom.xml``;
* ``<state>/bin/ferretdb-standin``, from ``deploy/ferretdb/`` (only for ``--store mongodb``
  when the Mongo URL points at this machine).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

DEPLOY_DIR = Path(__file__).resolve().parent
KAFKA_POM = DEPLOY_DIR / "kafka" / "pom.xml"
FERRETDB_SRC = DEPLOY_DIR / "ferretdb"

Progress = Callable[[str], None]


class ProvisionError(RuntimeError):
    """A provisioning step failed; the message says what to install or check."""


def _need(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ProvisionError(f"`{tool}` is not on PATH: {hint}")
    return path


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise ProvisionError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def _fingerprint(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        if path.exists():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def ensure_kafka_libs(state_dir: Path, progress: Progress = print) -> Path:
    """Return the directory of Kafka's runtime jars, resolving them with Maven if needed."""
    libs = state_dir / "kafka" / "libs"
    stamp = libs / ".pom-sha"
    want = _fingerprint(KAFKA_POM)
    if stamp.exists() and stamp.read_text() == want and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    mvn = _need("mvn", "install Maven 3 (Debian: apt-get install maven) and retry.")
    _need("java", "install a Java 17 runtime (Debian: apt-get install openjdk-17-jre-headless).")
    progress("provision: resolving Apache Kafka jars with Maven (first time: about a minute)...")
    started = time.monotonic()
    if libs.exists():
        shutil.rmtree(libs)
    libs.mkdir(parents=True)
    _run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(KAFKA_POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ],
        "mvn dependency:copy-dependencies",
    )
    stamp.write_text(want)
    count = len(list(libs.glob("*.jar")))
    progress(f"provision: {count} Kafka jars ready in {time.monotonic() - started:.1f}s")
    return libs


def ensure_ferretdb_binary(state_dir: Path, progress: Progress = print) -> Path:
    """Return the FerretDB stand-in binary, building it with Go if needed."""
    binary = state_dir / "bin" / "ferretdb-standin"
    stamp = binary.with_suffix(".src-sha")
    want = _fingerprint(*(FERRETDB_SRC / n for n in ("main.go", "go.mod", "go.sum")))
    if binary.exists() and stamp.exists() and stamp.read_text() == want:
        return binary
    go = _need("go", "install Go 1.22 or newer and retry.")
    progress(
        "provision: building the FerretDB v1.24.2 stand-in with Go "
        "(first time: about 2 minutes and 700 MB of module cache)..."
    )
    started = time.monotonic()
    binary.parent.mkdir(parents=True, exist_ok=True)
    _run(
        [go, "build", "-trimpath", "-ldflags=-s -w", "-o", str(binary), "."],
        "go build (deploy/ferretdb)",
        cwd=FERRETDB_SRC,
    )
    stamp.write_text(want)
    progress(f"provision: FerretDB stand-in built in {time.monotonic() - started:.1f}s")
    return binary
