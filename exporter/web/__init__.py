"""HTTP: the app and its endpoints, the listener, /probe and the landing page."""
