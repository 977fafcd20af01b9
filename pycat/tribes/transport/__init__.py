"""The TCP transport: NioReceiver and the pooled parallel sender."""
