"""Models as the API returns them (plain dicts, shaped as the ``api.schemas`` response models)."""
