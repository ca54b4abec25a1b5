"""api.payload.loads (orjson, for the logbook's 4 MB write bodies) reads every body exactly as json.loads did:
the same value, of the same types, or the same error message (the 400's "JSON parse error - ..." text)."""

import json
import math
import random

import pytest

from api.payload import loads


def outcome(decode, raw):
    try:
        return "value", decode(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return "error", f"{type(exc).__name__}: {exc}"


def identical(a, b):
    """Equal, with the same types all the way down (1 vs 1.0, -0.0 vs 0.0, nan vs nan)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, dict):
        return list(a) == list(b) and all(identical(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b, strict=False))
    return a == b


def assert_same_as_json(raw):
    new, old = outcome(loads, raw), outcome(json.loads, raw)
    assert new[0] == old[0], (raw, new, old)
    if new[0] == "value":
        assert identical(new[1], old[1]), (raw, new, old)
    else:
        assert new[1] == old[1], raw


BODIES = [
    # integers beyond 64 bits: json.loads keeps them exact; orjson would make floats of them
    b'{"value": 18446744073709551616}',
    b'{"value": -9223372036854775809}',  # orjson: -9.223372036854776e18, which is -2**63 again: in range!
    b'{"value": 123456789012345678901234567890}',
    b'{"value": 9223372036854775808}',
    b'{"value": -9223372036854775808}',
    b'{"value": 1234567890123456789.5}',
    b'{"value": 0.12345678901234567890123}',
    # literals json.loads accepts and orjson refuses
    b'{"value": NaN}',
    b'{"value": Infinity}',
    b'{"value": -Infinity}',
    b'{"value": 1e400}',
    b'{"value": -1e400}',
    b'{"value": "\\ud800"}',  # lone surrogate escape
    b'\xef\xbb\xbf{"value": 1}',  # UTF-8 byte order mark
    '{"value": "é"}'.encode("utf-16"),
    '{"value": "é"}'.encode("utf-32"),
    '{"value": "é"}'.encode("utf-16-le"),
    # the same value either way
    b'{"value": 1, "value": 2}',  # duplicate keys: the last wins
    b'{"value": -0}',
    b'{"value": -0.0}',
    b'{"value": 1e-400}',
    b'{"value": 5e-324}',
    b'{"value": 1.7976931348623157e308}',
    b'{"value": 1E2, "b": 1e+2, "c": 1.5e-3}',
    b'{"value": 18446744073709551615}',
    b'{"value": "\\u00e9\\ud83d\\ude00 \\" \\\\ \\/ \\b\\f\\n\\r\\t"}',
    '{"value": "åäö € 😀"}'.encode(),
    b' \t\r\n{"value": [true, false, null, {}, []]} \n',
    b"[1, 2]",
    b'"text"',
    b"3",
    # malformed: the same message
    b"{nope",
    b'{"value": 1,}',
    b'{"value": [1,]}',
    b'{"value": 01}',
    b'{"value": 1.}',
    b'{"value": .5}',
    b'{"value": +1}',
    b'{"value": "a\x01b"}',  # raw control character
    b'{"value": "\\x"}',
    b'{"value": 1} x',
    b'{"value": 1}{}',
    b"{'value': 1}",
    b"\xff\xfe\xfd",  # not UTF-8
    b'{"value": "\xc3"}',  # truncated UTF-8 sequence
    b'{"value": "\xed\xa0\x80"}',  # an encoded surrogate
    b"\x00",
    b" ",
]


@pytest.mark.parametrize("raw", BODIES, ids=range(len(BODIES)))
def test_same_value_or_same_error_as_json_loads(raw):
    assert_same_as_json(raw)


def test_integers_beyond_64_bits_stay_exact_integers():
    assert loads(b'{"value": -9223372036854775809}') == {"value": -(2**63) - 1}
    assert type(loads(b'{"value": 18446744073709551616}')["value"]) is int


def test_random_mutations_of_write_bodies_decode_as_json_loads_did():
    seeds = [
        b'{"device_id": "6f0c", "records": [{"ts": 1594289021415, "field": "obd.bat.voltage", "field_type": "float",'
        b' "value": 13.5}, {"ts": "2020-07-09T10:11:53.811839Z", "field": "p", "field_type": "geo_point",'
        b' "value": {"lat": 57.04699, "lon": -9.9e-3}}]}',
        b'{"a": [1, -0, -0.0, 1e308, 5e-324, 123456789012345678, true, false, null, "\\u00e9\\ud83d\\ude00\\n"]}',
    ]
    alphabet = list(b'{}[]",:0123456789-+.eE tfnul\\\t\n\x00\xff\xc3\xa9')
    inserts = [
        b"NaN",
        b"-Infinity",
        b"99999999999999999999",
        b"-9223372036854775809",
        b"1e400",
        b"\xef\xbb\xbf",
        b"\\ud800",
        b'"k":1,',
        b"1.",
        b"01",
    ]
    rng = random.Random(20261128)
    for _ in range(3000):
        raw = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            pos, op = rng.randrange(len(raw) + 1), rng.random()
            if op < 0.4 and raw:
                del raw[min(pos, len(raw) - 1)]
            elif op < 0.8:
                raw[pos:pos] = bytes([rng.choice(alphabet)])
            else:
                raw[pos:pos] = rng.choice(inserts)
        assert_same_as_json(bytes(raw))
