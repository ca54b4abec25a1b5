"""api.deployments.service.queue_release: a device runs the newest release that lists it."""

from sqlalchemy import select

from api.deployments.models import Deployment
from api.deployments.service import queue_release, unlist_devices
from api.devices.models import Device
from api.extensions import db
from api.outbox import OutboxMessage
from api.releases.models import Project, Release
from tests.fixtures.api import deployment_statuses


def _pairs(devices):
    return [(d.id, d.unit_id) for d in devices]


def _release(project, version, devices):
    release = Release(
        project_id=project.id, version=version, version_hash=f"{abs(hash(version)) % 16**8:08x}"
    )
    release.devices = devices
    db.session.add(release)
    db.session.flush()
    queue_release(release, _pairs(devices))
    db.session.commit()
    return release


def _status(release, device):
    return deployment_statuses(release.id).get(device.id)


def _project(account):
    project = Project(account_id=account.id, name="p")
    db.session.add(project)
    db.session.flush()
    return project


def _stored(release, device):
    """The release's stored deployment on the device (a device report writes it)."""
    deployment = db.session.scalar(
        select(Deployment).where(
            Deployment.release_id == release.id, Deployment.device_id == device.id
        )
    )
    if deployment is None:
        deployment = Deployment(release_id=release.id, device_id=device.id, attempts=1)
        db.session.add(deployment)
    return deployment


def test_newer_release_supersedes_older_pending(app, account, api_factory):
    d1, d2 = api_factory.device(account), api_factory.device(account)
    with app.app_context():
        dev1, dev2 = db.session.get(Device, d1.id), db.session.get(Device, d2.id)
        project = _project(account)
        r1 = _release(project, "1", [dev1, dev2])
        assert _status(r1, dev1) == _status(r1, dev2) == "queued"
        r2 = _release(project, "2", [dev1])
        assert _status(r2, dev1) == "queued"
        assert _status(r1, dev1) == "superseded"
        assert _status(r1, dev2) == "queued"


def test_succeeded_deployments_stay_succeeded(app, account, api_factory):
    d1 = api_factory.device(account)
    with app.app_context():
        dev1 = db.session.get(Device, d1.id)
        project = _project(account)
        r1 = _release(project, "1", [dev1])
        _stored(r1, dev1).status = "succeeded"
        db.session.commit()
        _release(project, "2", [dev1])
        assert _status(r1, dev1) == "succeeded"


def test_adding_device_to_older_release_is_superseded_at_once(app, account, api_factory):
    d1 = api_factory.device(account)
    with app.app_context():
        dev1 = db.session.get(Device, d1.id)
        project = _project(account)
        r1 = _release(project, "1", [])
        r2 = _release(project, "2", [dev1])
        r1.devices.append(dev1)
        queue_release(r1, _pairs([dev1]))
        db.session.commit()
        assert _status(r1, dev1) == "superseded"
        assert _status(r2, dev1) == "queued"


def test_removing_device_requeues_previous_release(app, account, api_factory):
    d1 = api_factory.device(account)
    with app.app_context():
        dev1 = db.session.get(Device, d1.id)
        project = _project(account)
        r1 = _release(project, "1", [dev1])
        _stored(r1, dev1).status = "succeeded"
        r2 = _release(project, "2", [dev1])
        _stored(r2, dev1).status = "applying"
        unlist_devices([r2.id], [dev1.id])
        db.session.commit()
        assert _status(r2, dev1) == "superseded"
        assert _status(r1, dev1) == "queued"


def test_applying_deployment_of_older_release_is_superseded(app, account, api_factory):
    d1 = api_factory.device(account)
    with app.app_context():
        dev1 = db.session.get(Device, d1.id)
        project = _project(account)
        r1 = _release(project, "1", [dev1])
        _stored(r1, dev1).status = "applying"
        db.session.commit()
        r2 = _release(project, "2", [dev1])
        assert _stored(r1, dev1).status == "superseded"
        assert _status(r2, dev1) == "queued"


def test_queueing_stores_no_deployment_until_the_device_reports(app, account, api_factory):
    devices = [api_factory.device(account) for _ in range(3)]
    with app.app_context():
        rows = [db.session.get(Device, d.id) for d in devices]
        project = _project(account)
        r1 = _release(project, "1", rows)
        assert db.session.scalars(select(Deployment)).all() == []
        assert [_status(r1, d) for d in rows] == ["queued"] * 3
        outbox = db.session.scalars(select(OutboxMessage)).one()
        assert sorted(outbox.payload["minions"]) == sorted(d.unit_id for d in rows)


def test_removing_device_from_older_release_leaves_its_target_alone(app, account, api_factory):
    d1 = api_factory.device(account)
    with app.app_context():
        dev1 = db.session.get(Device, d1.id)
        project = _project(account)
        r1 = _release(project, "1", [dev1])
        r2 = _release(project, "2", [dev1])
        before = len(db.session.scalars(select(OutboxMessage)).all())
        unlist_devices([r1.id], [dev1.id])
        db.session.commit()
        assert _status(r1, dev1) is None
        assert _status(r2, dev1) == "queued"
        assert (
            len(db.session.scalars(select(OutboxMessage)).all()) == before
        )  # nothing new to tell the device


def test_deleting_newest_release_queues_the_previous_one_again(app, account, api_factory):
    d1 = api_factory.device(account)
    with app.app_context():
        dev1 = db.session.get(Device, d1.id)
        project = _project(account)
        r1 = _release(project, "1", [dev1])
        r2 = _release(project, "2", [dev1])
        assert _status(r1, dev1) == "superseded"
        unlist_devices([r2.id])
        db.session.delete(r2)
        db.session.commit()
        assert _status(r1, dev1) == "queued"
        last = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc())).first()
        assert last.reason == f"release {r1.id} queued" and last.payload["minions"] == [
            dev1.unit_id
        ]
