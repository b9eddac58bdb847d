"""AudioSocket: the frame format (``protocol``) and the engine's server (``server``)."""
