"""The transformer's container image: its size, and how fast a container is ready and stops.

Run: `.venv/bin/python -m bench.container` (`--runs 5`); needs the local stack and a Docker engine
(`eventbus-dev image build` gets one: the one that answers, or Debian's started by the stack).

1. `image_size_mb`: `docker image inspect`'s size of `eventbus-transformer:dev`, built from
   transformer/Dockerfile just before (on the official Python slim image where it can be pulled, else
   on the base made from Debian packages; the result names the base).
2. `container_ready_s`: from `docker run` (the hardened flags of production: read-only root, no
   capabilities) to the first 200 of `/readyz`, polled every 50 ms, against the local stack, with the
   image's own mappings (the sample claims domain: four mappings, one of them with lookups, whose
   store starts empty). Each run uses a new consumer group, its topics provisioned before with
   `eventbus topics apply`. The median of `--runs` runs.
3. `container_stop_s`: `docker stop` of the same, idle, ready container, until it has exited (Docker
   gives 10 s before SIGKILL). The median.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Final

if __package__ in (None, ""):  # `python bench/container.py`: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

DEFAULT_RUNS: Final = 5
_HARDENED: Final = ("--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges")
_READY_TIMEOUT_S: Final = 60.0


def measure(runs: int = DEFAULT_RUNS) -> dict[str, Any]:
    from eventbus_dev.stack.docker_engine import DockerEngine
    from eventbus_dev.stack.images import build_transformer_image
    from eventbus_dev.stack.settings import StackSettings

    settings = StackSettings()
    engine = DockerEngine(settings).ensure()
    built = build_transformer_image(engine, settings.repo_dir, settings.cache, lambda m: print(f"  {m}"))
    mappings = settings.repo_dir / "mappings"
    _ensure_staging_topics(settings.bootstrap_servers, mappings)
    ready, stopped = [], []
    for run in range(runs):
        name, port = f"eventbus-bench-{uuid.uuid4().hex[:8]}", _free_port()
        environment = {
            "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "EVENTBUS_REGISTRY__URL": settings.registry_url,
            "EVENTBUS_GROUP_ID": f"bench-container-{uuid.uuid4().hex[:8]}",
            "EVENTBUS_HTTP__HOST": "127.0.0.1",
            "EVENTBUS_HTTP__PORT": str(port),
        }
        flags = [arg for key, value in environment.items() for arg in ("-e", f"{key}={value}")]
        _apply_topics(mappings, environment)  # the group's dead-letter topic, the curated ones
        started = time.monotonic()
        engine.docker("run", "-d", "--name", name, "--network", "host", *_HARDENED, *flags, built.tag)
        try:
            ready.append(_until_ready(engine, name, port, started))
            started = time.monotonic()
            engine.docker("stop", "--time", "10", name, timeout=60)
            stopped.append(time.monotonic() - started)
            code = engine.docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
            if code != "0":
                raise RuntimeError(f"run {run}: the container exited {code} at docker stop")
        finally:
            engine.docker("rm", "--force", "--volumes", name, check=False)
    return {
        "image_size_mb": built.size_mb,
        "container_ready_s": round(statistics.median(ready), 2),
        "container_stop_s": round(statistics.median(stopped), 2),
        "image_base": built.base,
        "container_ready_runs_s": [round(s, 2) for s in ready],
        "container_stop_runs_s": [round(s, 2) for s in stopped],
        "image_notes": built.notes,
    }


def _apply_topics(mappings: Path, environment: dict[str, str]) -> None:
    """`eventbus topics apply` with the container's settings, as a team runs it before deploying."""
    import os
    import subprocess

    command = [
        str(Path(sys.executable).with_name("eventbus")),
        "topics",
        "apply",
        "--mappings",
        str(mappings),
    ]
    result = subprocess.run(command, env={**os.environ, **environment}, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"topics apply failed: {result.stdout}{result.stderr}")


def _ensure_staging_topics(bootstrap: str, mappings: Path) -> None:
    """The staging topics the image's mappings read, as `source register` leaves them."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from eventbus.service.loading import load_mapping_set

    mapping_set = load_mapping_set(mappings)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=30).topics)
    missing = [NewTopic(topic, 3, 1) for topic in mapping_set.staging_topics if topic not in existing]
    for topic, future in admin.create_topics(missing).items() if missing else []:
        try:
            future.result(30)
        except Exception as error:  # created meanwhile by someone else: fine
            if "TOPIC_ALREADY_EXISTS" not in str(error):
                raise RuntimeError(f"cannot create {topic}: {error}") from error


def _until_ready(engine: Any, name: str, port: int, started: float) -> float:
    url = f"http://127.0.0.1:{port}/readyz"
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() - started < _READY_TIMEOUT_S:
            try:
                if client.get(url).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    logs = engine.docker("logs", name, check=False)
    raise RuntimeError(f"{name} not ready after {_READY_TIMEOUT_S:.0f}s:\n{(logs.stderr or '')[-2000:]}")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def report(result: dict[str, Any]) -> None:
    print(f"  image {result['image_size_mb']} MB on {result['image_base']}")
    ready, runs = result["container_ready_s"], result["container_ready_runs_s"]
    print(f"  docker run → /readyz 200: median {ready} s {runs}")
    print(f"  docker stop (idle): median {result['container_stop_s']} s {result['container_stop_runs_s']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    report(measure(parser.parse_args().runs))


if __name__ == "__main__":
    main()
