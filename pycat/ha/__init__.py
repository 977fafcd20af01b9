"""Clustering on top of the Tribes channel (Tomcat's catalina.ha): today the cluster runs its channel;
session replication and farm deployment are built on it next."""
