"""Releases: ``schemas.py`` (bodies), ``serializers.py`` (a release, container, deployment as the
API returns them; ``release_for_device`` for the pillar), ``service.py`` (``create_release``: the
one way a release is made), ``pinning.py`` (tags resolved to digests), ``signatures.py`` (digests
verified against the account's signing keys), ``views.py`` (``/docker/projects/{p}/releases/``).
The tables stay in ``api/releases/models.py`` for now."""
