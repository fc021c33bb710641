"""The app's screens: the fleet browser and the key help."""
