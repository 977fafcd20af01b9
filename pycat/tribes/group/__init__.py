"""The group layer: GroupChannel, the interceptor chain, the coordinator tail and RPC."""
