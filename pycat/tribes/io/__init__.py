"""Tribes wire formats, pure (no sockets): ``framing`` (FLT2002/TLF2003 frames, ACK/FAIL_ACK),
``channel_data`` (the ChannelData package) and ``codec`` (pycat's own value encoding above it)."""
