"""Caps on what one request may carry: one home for each number, read by the validators and
by the OpenAPI document (``maxItems``, ``maximum``).

Every list in a body is capped before its items are validated and every validator is linear,
so the cost of any request, valid or not, is bounded by these caps rather than by the body
size limit (``MAX_CONTENT_LENGTH``, 16 MiB): ``bench/validation_bench.py`` prints the figures.
"""

from __future__ import annotations

# In the contract, as the master's runners send at most that much:
# * MAX_REPORT_BATCH: reports in one ``POST /master/deployments/report/`` list (berth.flush);
# * MAX_FORWARDED_RETURN_CHARS: a forwarded command return's ``response`` as JSON text
#   (``POST /master/execute/returns/``, berth.forward_return).
from berth.contract import MAX_FORWARDED_RETURN_CHARS, MAX_REPORT_BATCH  # noqa: F401

# An execute command's arguments (``arg``, ``kwarg``, an ``execute_raw`` line): at most
# MAX_ARG_NODES values and MAX_ARG_CHARS characters, and no YAML anchors or aliases. The numbers
# live in ``berth.execargs``: the on-device local API applies the same caps and cannot import api.
from berth.execargs import MAX_ARG_CHARS, MAX_ARG_NODES  # noqa: F401

MAX_DB_ID = 2**31 - 1  # ids in URLs (else 404) and bodies (else 400): what an id column holds

MAX_PAGE_SIZE = 1000  # ?page_size= above it is a 400 naming it
DEFAULT_PAGE_SIZE = 100

# Text fields of request bodies: at most this many characters (api/fields.py, the models)
NAME_MAX = 100  # a project's, registry's or signing key's name, a release's version
DESCRIPTION_MAX = 10_000  # a project's description
REGISTRY_URL_MAX = 255
REGISTRY_USERNAME_MAX = 255
REGISTRY_PASSWORD_MAX = 1024
UNIT_ID_MAX = 255  # a Salt minion id
HTTP_URL_MAX = 2048  # an execute callback's or rollout webhook's URL
SALT_JID_MAX = 32
VERSION_HASH_MAX = 8  # a report's release version hash
REPORT_SIGNATURE_MAX = 64  # a report's HMAC-SHA256, hex
REPORT_ERROR_MAX = 10_000  # a report's error text
ENROLLMENT_TOKEN_MAX = 200

MAX_RELEASE_DEVICES = 10_000  # a release's ``devices``
MAX_RELEASE_CONTAINERS = 100  # a release's ``containers``
MAX_REMOVE_CONTAINERS = 1000  # a release's ``remove_containers``
MAX_REQUIRED_TAGS = 100  # a container's ``required_tags``
MAX_SYNC_UNIT_IDS = 10_000  # ``POST /master/devices/sync/`` ``unit_ids``
MAX_REPORT_CONTAINERS = 1000  # a master report's ``containers``

# Pinning a new release's images (api/releases/pinning.py): each registry call, and the whole
# resolution of one request (distinct images resolved in parallel)
REGISTRY_TIMEOUT_SECONDS = 10
PINNING_DEADLINE_SECONDS = 30

# Free-form JSON (execute arguments, startup parameters) deeper than this is a 400, so no
# encoder or decoder later on recurses too deep.
MAX_JSON_DEPTH = 32
