"""Devices of the fleet: ``schemas.py`` (bodies, the minion id rule), ``service.py`` (a device's
fields and tags validated and changed, audited ``device.update``: the REST API and the console),
``views.py`` (``/devices/``). The ``Device`` table stays in ``api/devices/models.py`` until the
releases that refer to it move into their package."""
