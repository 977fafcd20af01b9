"""The container tree: Server → Service → Engine → Host → Context → Wrapper (Tomcat's catalina.core)."""
