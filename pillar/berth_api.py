"""ext_pillar ``berth_api``: each minion's target release, registries and logbook settings, from the Berth API.

Master config (see conf/master.d/berth.conf)::

    berth_api:
      url: http://127.0.0.1:8000
      token_file: /etc/salt/berth-master.token   # master-scope token, chmod 600
      timeout: 5
    ext_pillar:
      - berth_api: {}          # keys given here override the top-level berth_api ones

Produces ``docker:release`` / ``docker:registries`` and ``berth:logbook`` (``url``, ``token``,
``device_id``: what the ``berth_shipper`` engine sends samples with); when the API cannot be
asked, ``docker:error`` instead, and the release state refuses to run.
"""

from typing import TYPE_CHECKING, Any

from berth.master.minion_pillar import release_pillar

if TYPE_CHECKING:  # injected by Salt's loader when it loads this module
    __opts__: dict[str, Any]

__virtualname__ = "berth_api"


def __virtual__() -> str:
    return __virtualname__


def ext_pillar(  # Salt's ext_pillar signature
    minion_id: str, pillar: dict[str, Any], **kwargs: Any
) -> dict[str, Any]:
    conf = dict(__opts__.get("berth_api") or {})
    conf.update(kwargs)
    # The minion's grains come with every pillar request: an enrollment token among them
    # (grain berth_enrollment_token) lets a new minion join its account (docs/security.md).
    return release_pillar(conf, minion_id, grains=__opts__.get("grains"))
