"""Reactor wiring with real daemons, without the API: result events reach the runner
(and are spooled when the API cannot be asked); minion start runs docker.minion_start."""

import json

import pytest

from tests.fixtures.salt import wait_for

pytestmark = [pytest.mark.salt_daemons, pytest.mark.docker]


def test_minion_start_reactor_sets_up_registries_and_prepull_schedule(salt_cli, salt_minions):
    for minion in salt_minions:

        def scheduled(minion=minion):
            ret = salt_cli.run("schedule.list", "return_yaml=False", minion_tgt=minion.id)
            return isinstance(ret.data, dict) and "berth-prepull" in ret.data and ret.data

        data = wait_for(scheduled, timeout=120, what=f"berth-prepull scheduled on {minion.id}")
        assert data["berth-prepull"]["function"] == "docker.release_pull"


def test_result_event_is_forwarded_by_reactor_and_spooled_when_api_unreachable(
    salt_cli, salt_minions, fleet_state_dir, fleet_api_token_file
):
    saved = fleet_api_token_file.read_text()
    fleet_api_token_file.write_text("")  # the master cannot authenticate: reports must be kept
    try:
        _forward_and_spool(salt_cli, salt_minions, fleet_state_dir)
    finally:
        fleet_api_token_file.write_text(saved)


def _forward_and_spool(salt_cli, salt_minions, fleet_state_dir):
    minion = salt_minions[1]
    spool = fleet_state_dir / "spool"
    before = set(spool.glob("*.json"))
    data = {
        "release_id": 424242,
        "version_hash": "0badc0de",
        "outcome": "failed",
        "error": "pull failed: no such image",
        "containers": [],
        "finished_at": "2026-01-01T00:00:00.000Z",
    }
    ret = salt_cli.run(
        "event.send", "berth/release/result", f"data={json.dumps(data)}", minion_tgt=minion.id
    )
    assert ret.returncode == 0 and ret.data is True, ret

    def spooled():
        return [
            p
            for p in spool.glob("*.json")
            if p not in before and json.loads(p.read_text())["release_id"] == 424242
        ]

    files = wait_for(spooled, timeout=60, what="the result to be spooled by berth.report")
    report = json.loads(files[0].read_text())
    assert report == {"unit_id": minion.id, **data}
    for path in files:
        path.unlink()
