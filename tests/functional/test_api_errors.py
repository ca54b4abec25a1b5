"""Error bodies are JSON (DRF shapes), never HTML tracebacks."""


def test_unknown_url_is_json_404(client):
    r = client.get("/nope/")
    assert r.status_code == 404
    assert r.json == {"detail": "Not found."}


def test_wrong_method_is_json_405(client):
    r = client.delete("/devices/")
    assert r.status_code == 405
    assert r.json == {"detail": 'Method "DELETE" not allowed.'}


def test_malformed_json_is_400(client, user_token):
    r = client.post(
        "/devices/", data="{not json", headers=user_token.headers, content_type="application/json"
    )
    assert r.status_code == 400
    assert r.json["detail"].startswith("JSON parse error")


def test_non_object_json_is_400(client, user_token):
    r = client.post("/devices/", json=[1, 2], headers=user_token.headers)
    assert r.status_code == 400
    assert r.json == {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}


def test_other_media_type_is_415(client, user_token):
    r = client.post(
        "/devices/", data="unit_id=x", headers=user_token.headers, content_type="text/plain"
    )
    assert r.status_code == 415
    assert "Unsupported media type" in r.json["detail"]


def test_unexpected_exception_is_json_500(app):
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/boom/")
    def boom():
        raise RuntimeError("secret internals")

    r = app.test_client().get("/boom/")
    assert r.status_code == 500
    assert r.json == {"detail": "Internal server error."}
    assert b"secret internals" not in r.data


def test_missing_trailing_slash_redirects(client, user_token):
    r = client.get("/devices", headers=user_token.headers)
    assert r.status_code == 308 and r.headers["Location"].endswith("/devices/")


def test_oversized_body_is_json_413(app, client, user_token):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    r = client.post(
        "/devices/", data="x" * 5000, headers=user_token.headers, content_type="application/json"
    )
    assert r.status_code == 413 and "detail" in r.json


def test_missing_trailing_slash_redirect_body_is_json(client):
    r = client.post("/docker/projects", json={})
    assert r.status_code == 308 and r.headers["Location"].endswith("/docker/projects/")
    assert r.json == {"detail": f"Moved permanently to {r.headers['Location']}"}
