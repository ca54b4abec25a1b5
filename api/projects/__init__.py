"""Projects: an account's named groups of releases: ``schemas.py`` (bodies), ``views.py``
(``/docker/projects/``). The ``Project`` table stays with the releases it holds
(``api/models/releases.py``) until they move into their package."""
