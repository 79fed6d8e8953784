"""The transformer's container image, built with transformer/Dockerfile on the engine at hand.

The Dockerfile's base is the official Python slim image. Where that cannot be pulled (no registry
reachable), a base is made once from Debian packages — `debootstrap --variant=minbase` with python3
and venv, trimmed (no apt lists, docs, man pages or locales) — cached as a tarball under
`.cache/images/` and imported into the engine. Every such fallback is named in the build's notes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from eventbus_dev.stack.docker_engine import Engine
from eventbus_dev.stack.errors import StackError

OFFICIAL_BASE = "python:3.11-slim"
LOCAL_BASE = "eventbus-local/python:3.11-bookworm"
TRANSFORMER_IMAGE = "eventbus-transformer:dev"
# Debian 12: its python3 is 3.11, the version the package needs.
_SUITE = "bookworm"
_PACKAGES = "python3,python3-venv,ca-certificates"
_TRIM = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
         "usr/share/locale", "usr/share/info")  # fmt: skip
_HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
Log = Callable[[str], None]


@dataclass
class ImageBuild:
    tag: str
    base: str
    size_bytes: int
    build_seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def size_mb(self) -> float:
        return round(self.size_bytes / 1e6, 1)


def base_image(engine: Engine, cache: Path, log: Log) -> tuple[str, list[str]]:
    """The base to build on: the official image if present or pullable, else the local one."""
    if engine.docker("image", "inspect", OFFICIAL_BASE, check=False).returncode == 0:
        return OFFICIAL_BASE, []
    pulled = engine.docker("pull", OFFICIAL_BASE, check=False, timeout=300)
    if pulled.returncode == 0:
        return OFFICIAL_BASE, []
    reason = (pulled.stderr or "").strip().splitlines()[-1:] or ["no answer"]
    notes = [
        f"{OFFICIAL_BASE} cannot be pulled ({reason[0][:160]}): "
        f"building on {LOCAL_BASE}, made from Debian packages"
    ]
    if engine.docker("image", "inspect", LOCAL_BASE, check=False).returncode != 0:
        tarball = local_base_tarball(cache, log, notes)
        log(f"importing {tarball.name} as {LOCAL_BASE}")
        engine.docker("import", "--change", "ENV LANG=C.UTF-8", str(tarball), LOCAL_BASE, timeout=600)
    return LOCAL_BASE, notes


def local_base_tarball(cache: Path, log: Log, notes: list[str]) -> Path:
    """A minimal Debian root filesystem with python3 and venv, made once and kept under `cache`."""
    folder = cache / "images"
    tarball = folder / f"debian-{_SUITE}-python3.tar"
    if tarball.exists():
        return tarball
    if shutil.which("debootstrap") is None:
        _apt_install("debootstrap", notes)
    rootfs = folder / f"rootfs-{_SUITE}"
    shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.mkdir(parents=True)
    mirror = debian_mirror()
    log(f"debootstrap {_SUITE} from {mirror} (about two minutes, once)")
    started = time.monotonic()
    result = subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={_PACKAGES}", _SUITE, str(rootfs), mirror],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise StackError(f"debootstrap failed: {(result.stdout + result.stderr).strip()[-2000:]}")
    for relative in _TRIM:
        for entry in (rootfs / relative).glob("*"):
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    partial = tarball.with_suffix(".partial")
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)  # devices, links, owners
    partial.rename(tarball)
    shutil.rmtree(rootfs, ignore_errors=True)
    notes.append(f"made {tarball} with debootstrap in {time.monotonic() - started:.0f}s")
    return tarball


def debian_mirror() -> str:
    """The Debian mirror apt uses on this machine (deb822 or one-line sources)."""
    for sources in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for match in re.finditer(r"^URIs:\s*(\S+)", sources.read_text(), re.MULTILINE):
            if "security" not in match.group(1):
                return match.group(1)
    listing = Path("/etc/apt/sources.list")
    if listing.exists():
        for match in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s", listing.read_text(), re.MULTILINE):
            if "security" not in match.group(1):
                return match.group(1)
    return "http://deb.debian.org/debian"


def build_transformer_image(
    engine: Engine,
    repo: Path,
    cache: Path,
    log: Log,
    *,
    tag: str = TRANSFORMER_IMAGE,
    base: str | None = None,
) -> ImageBuild:
    """`docker build` of transformer/Dockerfile with BuildKit and the host's network."""
    notes = list(engine.notes)
    if base is None:
        base, base_notes = base_image(engine, cache, log)
        notes += base_notes
    labels = {"VERSION": _version(repo), "REVISION": _revision(repo), "SOURCE": _source(repo)}
    args = ["build", "--network", "host", "-f", str(repo / "transformer" / "Dockerfile"), "-t", tag,
            "--build-arg", f"BASE_IMAGE={base}"]  # fmt: skip
    for name, value in labels.items():
        args += ["--build-arg", f"{name}={value}"]
    if _HOST_CA.exists():
        # pip inside the build trusts what the host trusts (a proxy's private CA included).
        args += ["--secret", f"id=pip-ca,src={_HOST_CA}"]
    log(f"building {tag} on {base}")
    started = time.monotonic()
    engine.docker(*args, str(repo), timeout=1800)
    seconds = time.monotonic() - started
    size = int(engine.docker("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())
    return ImageBuild(tag, base, size, round(seconds, 1), notes)


def _apt_install(package: str, notes: list[str]) -> None:
    if shutil.which("apt-get") is None:
        raise StackError(f"{package} is needed to build a base image without a registry: install it")
    result = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
                            capture_output=True, text=True, check=False)  # fmt: skip
    if result.returncode != 0:
        raise StackError(f"apt-get install {package} failed: {result.stderr.strip()[-1500:]}")
    notes.append(f"installed Debian's {package}")


def _source(repo: Path) -> str:
    """Where the source comes from: the checkout's origin, else the checkout itself."""
    result = subprocess.run(
        ["git", "-C", str(repo), "config", "--get", "remote.origin.url"], capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    return result.stdout.strip() or repo.resolve().as_uri()


def _revision(repo: Path) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "unknown"


def _version(repo: Path) -> str:
    match = re.search(r'^version\s*=\s*"([^"]+)"', (repo / "pyproject.toml").read_text(), re.MULTILINE)
    return match.group(1) if match else "unknown"
