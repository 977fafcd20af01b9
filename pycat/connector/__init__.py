"""HTTP connector: gevent.pywsgi behind an adapter into the Engine pipeline."""
