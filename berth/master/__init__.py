"""Master-side code (runs in the salt-master's runners, ext_pillar and reactor): ``apiclient``
(the fleet API client), ``forward`` (device results -> the API) with ``report_spool`` (results
kept on disk while the API is unreachable), ``pillar`` (ext_pillar data), ``config`` (master and
minion options).

The Salt loader modules ``pillar/berth_api.py`` and ``_runners/berth.py`` are thin wrappers.
"""
