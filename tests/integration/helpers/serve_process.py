"""``ivr serve`` as a real process for end-to-end tests: its environment (a Redis,
a routing file and flows, every optional port off, JSON logs), its start, and its
stop on SIGTERM with what it logged."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_env(redis_url: str, root: Path, flows: Path, **extra: str) -> dict[str, str]:
    """The engine's environment: state under ``root`` (``root/routing.yaml`` is its
    routing file), the demo service, the API and AudioSocket off; ``extra`` on top."""
    return dict(
        os.environ,
        IVR_REDIS_URL=redis_url,
        IVR_ROUTING_FILE=str(root / "routing.yaml"),
        IVR_FLOWS_DIR=str(flows),
        IVR_PROMPTS_DIR=str(root / "prompts"),
        IVR_REDIS_DIR=str(root / "redis"),
        IVR_DEMO_API_PORT="0",
        IVR_API_PORT="0",
        IVR_AUDIOSOCKET_PORT="0",
        IVR_LOG_FORMAT="json",
        **extra,
    )


def serve(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    """``python -m ivr.cli serve --port PORT``, its stderr (the logs) piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "ivr.cli", "serve", "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM, up to 30 s to drain (then killed); what the engine logged."""
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err
