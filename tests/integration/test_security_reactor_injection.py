"""A minion's event is data, never code on the master (docs/security.md "1."): real salt-master
with the shipped reactor, real minions. Events whose ``id`` and data hold YAML, Jinja, quotes and
newlines -- sent in the plain form (``event.send``) and in the nested ``events`` form that lets a
minion write the ``id`` the reactor sees -- run nothing on the master: the payload would
``touch`` a marker file through ``runner.salt.cmd`` -> ``cmd.run``, and it never appears."""

from __future__ import annotations

import time

import pytest

from berth.contract import EventTag
from tests.fixtures.salt import fire_nested_events, send_result_event, wait_for

pytestmark = [pytest.mark.salt_daemons, pytest.mark.docker]


def payloads(marker) -> list[str]:
    yaml_reaction = (
        "x:\n"
        "  runner.salt.cmd:\n"
        "    - args:\n"
        "      - fun: cmd.run\n"
        f"      - cmd: touch {marker}\n"
        "berth_pwned_y"
    )
    return [
        yaml_reaction,
        "x: {runner.salt.cmd: [{args: [{fun: cmd.run}, {cmd: 'touch " + str(marker) + "'}]}]}",
        "{{ salt['cmd.run']('touch " + str(marker) + "') }}",
        "{% do salt['cmd.run']('touch " + str(marker) + "') %}",
        "'\"\n!!python/object/apply:os.system ['touch " + str(marker) + "']",
    ]


def hostile_result(value):
    return {
        "release_id": value,
        "version_hash": value,
        "outcome": value,
        "error": value,
        "containers": [{"name": value}],
        "finished_at": value,
    }


def test_hostile_events_run_nothing_on_the_master(salt_cli, salt_run_cli, salt_minions, tmp_path):
    minion = salt_minions[0]
    marker = tmp_path / "pwned"
    values = payloads(marker)
    for value in values:
        # nested form: the minion writes the id the reactor reads
        fire_nested_events(
            salt_cli,
            minion,
            [
                {
                    "tag": EventTag.RELEASE_RESULT.value,
                    "data": {"id": value, "data": hostile_result(value)},
                },
                {
                    "tag": f"salt/minion/{minion.id}/start",
                    "data": {"id": value, "data": value},
                },
            ],
        )
        # plain form: the id is the minion's own (Salt checks it), the data is the minion's
        send_result_event(salt_cli, minion, hostile_result(value))

    # the reactor handles events in order: once a later, harmless reaction ran, the hostile ones
    # had their turn (a start event re-installs the pre-pull schedule on the minion)
    salt_cli.run("schedule.delete", "berth-prepull", minion_tgt=minion.id)
    fire_nested_events(
        salt_cli,
        minion,
        [{"tag": f"salt/minion/{minion.id}/start", "data": {"id": minion.id}}],
    )

    def scheduled():
        ret = salt_cli.run("schedule.list", "return_yaml=False", minion_tgt=minion.id)
        return isinstance(ret.data, dict) and "berth-prepull" in ret.data

    wait_for(scheduled, timeout=120, what="the harmless reaction after the hostile ones")
    time.sleep(3)  # runner reactions run in the reactor's thread pool
    assert not marker.exists(), "an event's data was run as code on the master"
