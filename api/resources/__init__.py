"""HTTP resources, one blueprint per module (DRF conventions: trailing slashes, 201/200/204)."""
