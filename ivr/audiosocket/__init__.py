"""AudioSocket: framing and (with the speech issue) the engine's server."""
