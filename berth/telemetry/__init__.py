"""Device-side telemetry: a durable on-disk spool and the sender that drains it to the logbook API."""
