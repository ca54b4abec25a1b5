"""Berth's Salt-side Python, called by the thin Salt loader modules of the bundle.

Where each part runs:

* on the device (minion): ``berth.release`` (release engine), ``berth.telemetry`` (logbook
  shipper), ``berth.localapi``, ``berth.sleephook``, ``berth.minionlogs``, ``berth.dockerutil``,
  ``berth.startup_params``;
* on the Salt master: ``berth.master`` (API client, report forwarding and its spool, ext_pillar,
  master/minion option generation);
* everywhere, the API included: ``berth.contract`` (the shared contract words) and
  ``berth.startup_params`` (the API validates with it, the device creates containers with it);
  ``berth.loader`` (the ``salt.loader`` entry point).
"""
