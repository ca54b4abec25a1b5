"""Business operations shared by the HTTP views, the CLI and the master-facing endpoints."""
