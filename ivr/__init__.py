"""IVR and skill-based call-routing engine for Asterisk.

``ivr.agi`` speaks FastAGI, ``ivr.testing`` ships an Asterisk emulator, and
``ivr.app`` wires the engine together. Routing lives in ``routing``, speech in
``speech``.
"""

__version__ = "0.1.0"
