"""Device-side Berth code used by the Salt bundle."""
