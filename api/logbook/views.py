"""HTTP endpoints of the logbook: /logbook/storage/{write,read,fields}/."""

import gc
import logging
from contextlib import contextmanager

from flask import Blueprint, g, jsonify, request
from sqlalchemy import select

from api.audit import not_audited
from api.auth import require_token
from api.devices.models import Device
from api.errors import NotFound, PermissionDenied, ValidationError
from api.extensions import db
from api.fields import FieldError
from api.logbook import schemas as schema
from api.openapi import Response, list_of, operation
from api.payload import json_body, raw_json_body

from . import query as read_query
from . import read, records, store

log = logging.getLogger(__name__)

bp = Blueprint("logbook", __name__, url_prefix="/logbook/storage")


def _device(device_id):
    """The device of the token's account (404 otherwise); a device token only reaches itself."""
    try:
        schema.check_device_id(device_id)
    except FieldError as exc:
        raise ValidationError({"device_id": exc.detail}) from None
    if len(device_id) > 64 or "\x00" in device_id or not device_id.isascii():
        raise NotFound()  # cannot be a device id (ids are ASCII); PostgreSQL rejects NUL
    device = db.session.scalars(
        select(Device).where(Device.id == device_id.strip(), Device.account_id == g.account.id)
    ).one_or_none()
    if device is None:
        raise NotFound()
    if g.device is not None and g.device.id != device.id:
        raise PermissionDenied("A device token can only write the telemetry of its own device.")
    return device


@contextmanager
def _gc_paused():
    """A batch allocates a dict and a few objects per record, all alive until
    the write is done; the cyclic collector would walk them again and again
    for nothing. They are dropped before it is enabled again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _write_batch():
    """Validate and store the request's batch -> (device, received, written);
    the decoded body and the batch die with this frame."""
    valid = records.from_json(raw_json_body())
    if valid is not None:
        device = _device(valid[0])
        batch = valid[1]
    else:  # the model refused the body: judged as usual, every problem named
        body = json_body()
        device = _device(body.get("device_id"))
        batch, errors = records.validate(body.get("records"))
        if errors:
            raise ValidationError(errors)
    try:
        written = store.write(db.session.connection(), device.id, batch)
    except store.BatchRejected as rejected:
        db.session.rollback()
        raise ValidationError(rejected.errors) from None
    return device, len(batch), written


_ERRORS = {
    400: "Invalid input, naming the parameter (or the record index).",
    403: "Wrong token scope, or a device token for another device.",
    404: "Unknown device, or a device of another account.",
}


@bp.post("/write/")
@operation(
    "logbook",
    "Store a batch of samples of one device (idempotent on device, field, ts; all or nothing)",
    description="A device token writes its own device only. A record's `value` has the type its "
    "`field_type` names.",
    body=schema.LogbookWrite,
    responses={201: Response(schema.LogbookWritten, "Stored.")},
    errors=_ERRORS,
)
@not_audited(
    "telemetry written into the logbook: device data, not a change of configuration, policy "
    "or credentials (and far too frequent for the audit log)"
)
@require_token("user", "device")
def write():
    with _gc_paused():
        device, received, written = _write_batch()
    db.session.commit()
    log.info(
        "logbook: device %s (%s) wrote %d samples, %d new",
        device.id,
        device.unit_id,
        received,
        written,
    )
    return schema.LogbookWritten.body(
        device, device_id=device.id, received=received, written=written
    ), 201


@bp.get("/read/")
@operation(
    "logbook",
    "Raw samples or aggregated buckets of one field over [from_utc, to_utc)",
    description=f"Buckets aligned to from_utc, empty ones omitted, at most {schema.MAX_BUCKETS} "
    f"buckets. {(schema.LogbookReadQuery.__doc__ or ': ').split(': ', 1)[1]}",
    query=schema.LogbookReadQuery,
    responses={200: Response(list_of(schema.LogbookRow), "Rows, oldest first.")},
    errors=_ERRORS,
)
@require_token("user")
def read_samples():
    parsed, errors = read_query.parse(request.args)
    if errors:
        raise ValidationError(errors)
    device = _device(parsed.device_id)
    return jsonify(device_samples(device, parsed))


def device_samples(device: Device, parsed: read_query.ReadQuery) -> list[dict]:
    """The samples (or buckets) ``parsed`` asks of ``device``'s field, as GET read answers them
    (the console's telemetry chart reads them here too); 400 when the field has another type."""
    conn = db.session.connection()
    known = store.field_catalog(conn, device.id).get(parsed.field)
    if known is None:
        return []
    field_id, field_type = known
    if field_type != parsed.field_type:
        raise ValidationError(
            {
                "field_type": [
                    f"field '{parsed.field}' of this device is {field_type}, not {parsed.field_type}"
                ]
            }
        )
    return read.read(conn, field_id, field_type, parsed)


@bp.get("/fields/")
@operation(
    "logbook",
    "The fields of a device and their types",
    query=schema.LogbookFieldsQuery,
    responses={200: Response(list_of(schema.LogbookField), "Fields by name.")},
    errors=_ERRORS,
)
@require_token("user")
def list_fields():
    device = _device(request.args.get("device_id"))
    catalog = store.field_catalog(db.session.connection(), device.id)
    return jsonify(
        [
            schema.LogbookField.body(None, field=name, field_type=field_type)
            for name, (_, field_type) in sorted(catalog.items())
        ]
    )
