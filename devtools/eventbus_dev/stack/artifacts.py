"""What the local stack needs on disk: PostgreSQL server binaries, a Java runtime, and the JVM
services resolved from Maven Central into the git-ignored cache."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eventbus_dev.stack.errors import StackError
from eventbus_dev.stack.settings import StackSettings

Log = Callable[[str], None]


@dataclass(frozen=True)
class Artifacts:
    """Paths of everything the services run from."""

    postgres_bin: Path
    java: Path
    registry_java: Path
    kafka_libs: Path
    connect_plugins: Path
    registry_dir: Path


def find_postgres_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin folder (Debian layout), if any."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    on_path = shutil.which("postgres")
    return Path(on_path).resolve().parent if on_path else None


def ensure_postgres(log: Log) -> Path:
    """PostgreSQL's bin folder, installing Debian's package when we are root and it is missing."""
    found = find_postgres_bin()
    if found:
        return found
    if os.geteuid() != 0:
        raise StackError(
            "PostgreSQL server binaries not found. Install them (Debian/Ubuntu: "
            "`sudo apt-get install -y postgresql`) and run again."
        )
    log("installing PostgreSQL from Debian packages (apt-get install postgresql)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "postgresql"]):
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(f"`{' '.join(command)}` failed:\n{result.stderr[-2000:]}")
    found = find_postgres_bin()
    if not found:
        raise StackError(
            "apt-get installed postgresql but no server binary was found under /usr/lib/postgresql"
        )
    return found


def _java_major(java: Path) -> int:
    result = subprocess.run([str(java), "-version"], capture_output=True, text=True, check=False)
    banner = result.stderr or result.stdout
    try:
        return int(banner.split('"')[1].split(".")[0])
    except (IndexError, ValueError):
        return 0


def find_java(min_major: int) -> Path:
    """A Java runtime of at least `min_major`: $JAVA_HOME, `java` on PATH, then the JDKs in /usr/lib/jvm."""
    candidates: list[Path] = []
    if java_home := os.environ.get("JAVA_HOME"):
        candidates.append(Path(java_home) / "bin" / "java")
    if on_path := shutil.which("java"):
        candidates.append(Path(on_path))
    candidates += sorted(Path("/usr/lib/jvm").glob("*/bin/java"), reverse=True)
    seen: set[Path] = set()
    for candidate in candidates:
        resolved = candidate.resolve()
        if resolved in seen or not resolved.exists():
            continue
        seen.add(resolved)
        if _java_major(resolved) >= min_major:
            return resolved
    raise StackError(
        f"Java {min_major} or newer is required and none was found (JAVA_HOME, PATH, /usr/lib/jvm). "
        f"Install one, e.g. `apt-get install openjdk-{min_major}-jre-headless`, or set JAVA_HOME."
    )


def ensure_jvm_artifacts(settings: StackSettings, log: Log) -> tuple[Path, Path, Path]:
    """Resolve Kafka, Connect, Debezium and Apicurio with Maven into the cache, once per pom version."""
    pom = settings.repo_dir / "stack" / "pom.xml"
    if not pom.exists():
        raise StackError(f"{pom} is missing: run from a checkout of this repository.")
    cache = settings.cache / "stack"
    cache.mkdir(parents=True, exist_ok=True)
    stamp = cache / ".pom.sha256"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    kafka_libs = cache / "kafka-libs"
    plugins = cache / "connect-plugins"
    registry = cache / "apicurio-registry"
    # One resolver at a time: two `up`s at once must not unpack over each other.
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        up_to_date = stamp.exists() and stamp.read_text().strip() == digest
        if up_to_date and _complete(kafka_libs, plugins, registry):
            return kafka_libs, plugins, registry
        mvn = shutil.which("mvn")
        if not mvn:
            raise StackError("Maven (`mvn`) is required to fetch Kafka, Connect, Debezium and Apicurio.")
        log("resolving Kafka, Kafka Connect, Debezium and Apicurio Registry from Maven Central")
        stamp.unlink(missing_ok=True)
        # The dependency plugin's markers (under the pom's target/) say "already unpacked": with the
        # folders emptied they must go too, or a changed pom leaves the archives unpacked nowhere.
        for stale in (kafka_libs, plugins, registry, pom.parent / "target"):
            shutil.rmtree(stale, ignore_errors=True)
        command = [
            mvn, "-B", "-q", "-f", str(pom),
            f"-Dmaven.repo.local={settings.cache / 'm2'}",
            f"-Dstack.cache={cache}",
            "generate-resources",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            output = (result.stdout + result.stderr)[-3000:]
            raise StackError(f"Maven could not resolve the stack's artifacts:\n{output}")
        if not _complete(kafka_libs, plugins, registry):
            raise StackError(f"Maven finished but the stack's artifacts are incomplete under {cache}")
        stamp.write_text(digest + "\n")
    return kafka_libs, plugins, registry


def _complete(kafka_libs: Path, plugins: Path, registry: Path) -> bool:
    """Whether every service's entry point is on disk (a stamp alone can outlive a deleted folder)."""
    return (
        any(kafka_libs.glob("kafka_2.13-*.jar"))
        and any(kafka_libs.glob("connect-runtime-*.jar"))
        and any(kafka_libs.glob("kafka-tools-[0-9]*.jar"))
        and any(plugins.glob("debezium-connector-postgres/debezium-connector-postgres-*.jar"))
        and (registry / "quarkus-run.jar").exists()
    )


def ensure_artifacts(settings: StackSettings, log: Log) -> Artifacts:
    postgres_bin = ensure_postgres(log)
    java = find_java(17)
    registry_java = find_java(21)  # Apicurio Registry 3.3 is compiled for Java 21
    kafka_libs, plugins, registry = ensure_jvm_artifacts(settings, log)
    return Artifacts(postgres_bin, java, registry_java, kafka_libs, plugins, registry)
