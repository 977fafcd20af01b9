"""Farm deployment: a FarmWarDeployer sends WARs to every node of the cluster (Tomcat's ha.deploy)."""
