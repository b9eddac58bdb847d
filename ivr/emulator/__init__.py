"""The Asterisk emulator behind :mod:`ivr.testing` (private modules)."""
