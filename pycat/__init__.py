"""pycat: Apache Tomcat's container and clustering model, rebuilt in Python."""

__version__ = "0.1.0"
SERVER_INFO = "pycat/" + __version__
