"""The ``ivr`` command line: every subcommand, one module per concern.

:mod:`ivr.cli.main` parses the command and runs it (``ivr serve`` starts the
engine); ``call`` plays a flow in the terminal or on a running engine;
``routing`` manages agents, queues and staffing; ``speech`` the Vosk models;
``supervise`` listens, whispers and barges through the API; ``deploy``
renders Asterisk's configuration.
"""

from ivr.cli.main import main

__all__ = ["main"]
