"""Deployment: one YAML file describing an Asterisk + engine installation, rendered
into the Asterisk configuration the engine needs (``ivr asterisk-conf render``)."""

from ivr.deploy.errors import DeploymentError
from ivr.deploy.model import Deployment, load_deployment
from ivr.deploy.render import render, write

__all__ = ["Deployment", "DeploymentError", "load_deployment", "render", "write"]
