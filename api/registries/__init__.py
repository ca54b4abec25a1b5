"""Registries: the private Docker registries an account's devices log in to (the password is
write-only): ``models.py`` (table ``registries``), ``schemas.py`` (bodies), ``views.py``
(``/docker/registries/``; ``create``/``update``/``delete``, which the console calls too)."""
