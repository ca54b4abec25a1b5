"""Projects: an account's named groups of releases: ``schemas.py`` (bodies), ``views.py``
(``/docker/projects/``). The ``Project`` table stays with the releases it holds
(``api/releases/models.py``) until they move into their package."""
