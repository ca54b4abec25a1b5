"""api.services.deployments.queue_release: a device runs the newest release that lists it."""

from sqlalchemy import select

from api.extensions import db
from api.models import Deployment, Device, Project, Release
from api.services.deployments import queue_release, unqueue_device


def _release(project, version, devices):
    release = Release(project_id=project.id, version=version, version_hash=f"{abs(hash(version)) % 16**8:08x}")
    release.devices = devices
    db.session.add(release)
    db.session.flush()
    queue_release(release, devices)
    db.session.commit()
    return release


def _status(release, device):
    return db.session.scalar(
        select(Deployment.status).where(Deployment.release_id == release.id, Deployment.device_id == device.id)
    )


def test_newer_release_supersedes_older_pending(app, account, api_factory):
    d1, d2 = api_factory.device(account), api_factory.device(account)
    with app.app_context():
        dev1, dev2 = db.session.get(Device, d1.id), db.session.get(Device, d2.id)
        project = Project(account_id=account.id, name="p")
        db.session.add(project)
        db.session.flush()
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
        project = Project(account_id=account.id, name="p")
        db.session.add(project)
        db.session.flush()
        r1 = _release(project, "1", [dev1])
        db.session.scalars(select(Deployment)).one().status = "succeeded"
        db.session.commit()
        _release(project, "2", [dev1])
        assert _status(r1, dev1) == "succeeded"


def test_adding_device_to_older_release_is_superseded_at_once(app, account, api_factory):
    d1 = api_factory.device(account)
    with app.app_context():
        dev1 = db.session.get(Device, d1.id)
        project = Project(account_id=account.id, name="p")
        db.session.add(project)
        db.session.flush()
        r1 = _release(project, "1", [])
        r2 = _release(project, "2", [dev1])
        r1.devices.append(dev1)
        queue_release(r1, [dev1])
        db.session.commit()
        assert _status(r1, dev1) == "superseded"
        assert _status(r2, dev1) == "queued"


def test_removing_device_requeues_previous_release(app, account, api_factory):
    d1 = api_factory.device(account)
    with app.app_context():
        dev1 = db.session.get(Device, d1.id)
        project = Project(account_id=account.id, name="p")
        db.session.add(project)
        db.session.flush()
        r1 = _release(project, "1", [dev1])
        db.session.scalars(select(Deployment)).one().status = "succeeded"
        r2 = _release(project, "2", [dev1])
        db.session.scalars(select(Deployment).where(Deployment.release_id == r2.id)).one().status = "applying"
        r2.devices.remove(dev1)
        unqueue_device(r2, dev1)
        db.session.commit()
        assert _status(r2, dev1) == "superseded"
        assert _status(r1, dev1) == "queued"
