"""Fixtures: the example deployment and the secrets it names."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.deploy import Deployment, load_deployment

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "asterisk_conf" / "deploy.example.yaml"

SECRETS = {
    "AMI_SECRET": "ami-secret-0123",
    "AGENT_1001_PASSWORD": "phone-1001-secret",
    "AGENT_1002_PASSWORD": "phone-1002-secret",
    "TRUNK_SECRET": "trunk-secret-42",
    "VOICEMAIL_100_PIN": "4321",
}


@pytest.fixture
def example() -> Deployment:
    """The documented example deployment."""
    return load_deployment(EXAMPLE)


@pytest.fixture
def secrets() -> dict[str, str]:
    return dict(SECRETS)
