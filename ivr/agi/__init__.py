"""FastAGI: the sans-I/O protocol, the asyncio server and the ``Channel`` API."""

from ivr.agi.channel import Channel, ChannelState, DigitsResult, PlaybackResult, RecordResult
from ivr.agi.protocol import Environment, Reply
from ivr.agi.server import FastAgiServer, Handler

__all__ = [
    "Channel",
    "ChannelState",
    "DigitsResult",
    "Environment",
    "FastAgiServer",
    "Handler",
    "PlaybackResult",
    "RecordResult",
    "Reply",
]
