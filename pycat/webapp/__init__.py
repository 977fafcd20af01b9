"""Web applications: descriptors, servlets, the default servlet and per-app module loading."""
