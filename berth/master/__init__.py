"""Master-side plain code for the fleet loop: the API client, the result spool, pillar and reports.

The Salt loader modules ``pillar/berth_api.py`` and ``_runners/berth.py`` are thin wrappers.
"""
