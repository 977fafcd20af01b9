"""Session replication (Tomcat's catalina.ha.session): the pure wire pieces first.

``attr_values`` turns one attribute value into plain codec values (or a dill blob) and back;
``delta`` holds DeltaRequest (one request's changes to one session) and the SessionMessage envelope.
Neither does any I/O."""
