"""Startup: server.xml digester and rule table, Catalina (load/start/await/stop), HostConfig."""
