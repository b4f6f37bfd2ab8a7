"""CSRF, security headers, failed-login limit, session expiry, and the one API error shape."""
from __future__ import annotations

import time

import jsonschema
import pytest
from conftest import ANSWERS, ID, PASSWORD, RECENT, csrf, login, token_for

HEADERS = {
    "Content-Security-Policy": "default-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


# ------------------------------------------------------------------ CSRF
@pytest.mark.parametrize("path,data", [
    ("/auth/login", {"username": "assessor1", "password": PASSWORD}),
    ("/assess/people", {"id_number": ID, "name": "张三"}),
    ("/auth/logout", {}),
])
@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_forms_without_the_csrf_token_are_refused(client, path, data, token):
    if path != "/auth/login":
        login(client, "assessor")
    if token:
        data = {**data, "csrf_token": token}
    resp = client.post(path, data=data)
    assert resp.status_code == 400
    assert "CSRF" in resp.get_data(as_text=True)


def test_login_with_the_csrf_token_works(client):
    assert login(client, "assessor").status_code == 302


def test_autosave_needs_the_csrf_header(client, world):
    login(client, "assessor")
    url = f"/assess/drafts/{world['draft']}/answers"
    resp = client.post(url, json={"answers": {"B.1.1": "4"}})
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "WEB_006"
    resp = client.post(url, json={"answers": {"B.1.1": "4"}}, headers={"X-CSRF-Token": csrf(client)})
    assert resp.status_code == 200


def test_api_takes_no_session_cookie(app, client, world):
    """The API is bearer-only: a logged-in browser session does not authenticate it (no CSRF surface)."""
    login(client, "officer")
    resp = client.post("/api/recognitions", json={"id_number": ID, "purpose": "ltc_benefit"})
    assert resp.status_code == 401


# ------------------------------------------------------------------ headers
@pytest.mark.parametrize("path", ["/auth/login", "/api/openapi.json", "/static/app.css", "/nowhere", "/api/nowhere"])
def test_security_headers_on_every_response(client, path):
    resp = client.get(path)
    for name, value in HEADERS.items():
        assert value in resp.headers.get(name, ""), name
    assert "Strict-Transport-Security" not in resp.headers
    if not path.startswith("/static"):
        assert resp.headers["Cache-Control"] == "no-store"
    resp.close()


def test_hsts_and_secure_cookie_behind_https(make_app):
    client = make_app(SESSION_COOKIE_SECURE=True).test_client()
    resp = client.get("/auth/login", base_url="https://localhost")
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
    cookie = resp.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_session_cookie_is_httponly_and_samesite(client):
    cookie = client.get("/auth/login").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


# ------------------------------------------------------------------ failed logins
def test_failed_logins_lock_the_account_for_the_window(app, client):
    for _ in range(3):                                # LOGIN_MAX_FAILURES = 3 in the test config
        assert login(client, "assessor", "wrong-password").status_code == 401
    resp = login(client, "assessor")                  # right password, but locked
    assert resp.status_code == 429
    assert "次数过多" in resp.get_data(as_text=True)
    assert login(client, "officer").status_code == 302   # another account is not locked


def test_lock_ends_after_the_window(make_app, monkeypatch):
    client = make_app().test_client()
    for _ in range(3):
        login(client, "assessor", "wrong-password")
    assert login(client, "assessor").status_code == 429
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 601)
    assert login(client, "assessor").status_code == 302


def test_many_names_from_one_address_are_limited(client):
    for i in range(12):                               # 4 × LOGIN_MAX_FAILURES from one address
        login(client, f"nobody{i}", "x")
    assert login(client, "officer").status_code == 429


def test_success_clears_the_failures(client):
    login(client, "assessor", "wrong-password")
    login(client, "assessor", "wrong-password")
    assert login(client, "assessor").status_code == 302
    client.post("/auth/logout", data={"csrf_token": csrf(client)})
    login(client, "assessor", "wrong-password")
    assert login(client, "assessor").status_code == 302


def test_unknown_user_and_wrong_password_look_the_same(client):
    a = login(client, "nobody", "x")
    b = login(client, "assessor", "x")
    assert a.status_code == b.status_code == 401
    assert a.get_data(as_text=True).count("用户名或密码错误") == 1 == b.get_data(as_text=True).count("用户名或密码错误")


# ------------------------------------------------------------------ session expiry
@pytest.mark.parametrize("field,age", [("seen_at", 31 * 60), ("login_at", 11 * 3600)])
def test_sessions_expire(client, field, age):
    login(client, "assessor")
    assert client.get("/assess/").status_code == 200
    with client.session_transaction() as s:
        s[field] = s[field] - age
        if field == "login_at":
            s["seen_at"] = time.time()
    resp = client.get("/assess/")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/auth/login")
    assert "登录已过期" in client.get("/auth/login").get_data(as_text=True)
    assert client.get("/assess/").status_code == 302


def test_activity_keeps_a_session_alive(client):
    login(client, "assessor")
    with client.session_transaction() as s:
        s["seen_at"] = s["seen_at"] - 29 * 60
    assert client.get("/assess/").status_code == 200
    with client.session_transaction() as s:
        assert time.time() - s["seen_at"] < 5


def test_login_starts_a_new_session(client):
    client.get("/auth/login")
    with client.session_transaction() as s:
        s["planted"] = "by an attacker"
        before = s["csrf"]
    login(client, "assessor")
    with client.session_transaction() as s:
        assert "planted" not in s and s["csrf"] != before


def test_logout_ends_the_session(client):
    login(client, "assessor")
    client.post("/auth/logout", data={"csrf_token": csrf(client)})
    assert client.get("/assess/").status_code == 302


def test_logout_ends_the_session_on_the_server(app, client):
    """A copy of the cookie taken before logout (a shared tablet, a stolen cookie) stops working."""
    login(client, "assessor")
    name = app.config["SESSION_COOKIE_NAME"]
    copied = client.get_cookie(name).value
    client.post("/auth/logout", data={"csrf_token": csrf(client)})
    other = app.test_client()
    other.set_cookie(name, copied)
    resp = other.get("/assess/")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/auth/login")


def test_a_cookie_without_a_server_session_is_refused(client):
    login(client, "assessor")
    with client.session_transaction() as s:
        s["sid"] = "made-up"
    assert client.get("/assess/").status_code == 302


# ------------------------------------------------------------------ the one error shape
def _error_schema(client):
    spec = client.get("/api/openapi.json").get_json()
    schema = dict(spec["components"]["schemas"]["Error"])
    schema["components"] = spec["components"]
    return schema


def _cases(app):
    officer = {"Authorization": f"Bearer {token_for(app, 'officer')}"}
    assessor = {"Authorization": f"Bearer {token_for(app, 'assessor')}"}
    sub = {"submission_id": "error-shape-001", "instrument": "gbt42195-2022", "answers": ANSWERS, "id_number": ID,
           "assessed_on": RECENT, "assessors": ["甲", "乙"], "reason": "first"}
    return [  # (method, path, kwargs, status, code)
        ("GET", "/api/instruments", {}, 401, "WEB_001"),
        ("GET", "/api/instruments", {"headers": {"Authorization": "Bearer nope"}}, 401, "WEB_001"),
        ("POST", "/api/submissions", {"headers": officer, "json": sub}, 403, "WEB_002"),
        ("GET", "/api/nowhere", {}, 404, "WEB_003"),
        ("GET", "/api/score", {"headers": assessor}, 405, "WEB_007"),
        ("POST", "/api/score", {"headers": assessor, "data": "not json", "content_type": "text/plain"}, 400, "WEB_004"),
        ("POST", "/api/score", {"headers": assessor, "json": {"instrument": "gbt42195-2022"}}, 422, "WEB_004"),
        ("POST", "/api/score", {"headers": assessor, "json": {"instrument": "nope", "answers": {}}}, 404, "INSTR_006"),
        ("POST", "/api/score", {"headers": assessor, "json": {"instrument": "gbt42195-2022",
                                                              "answers": {**ANSWERS, "B.1.1": 9}}}, 422, "RESP_002"),
        ("POST", "/api/score", {"headers": assessor, "json": {"instrument": "gbt42195-2022",
                                                              "answers": {"B.1.1": 4}}}, 422, "RESP_003"),
        ("POST", "/api/score", {"headers": assessor, "json": {"instrument": "gbt42195-2022", "answers": ANSWERS,
                                                              "settings": {"nope": "x"}}}, 422, "SET_001"),
        ("POST", "/api/submissions", {"headers": assessor, "json": {**sub, "id_number": ID[:-1] + "0"}}, 422,
         "STORE_005"),
        ("POST", "/api/submissions", {"headers": assessor, "json": {**sub, "assessors": ["甲"]}}, 422, "WEB_004"),
        ("POST", "/api/submissions", {"headers": assessor, "json": {**sub, "submission_id": "x"}}, 422, "WEB_004"),
        ("POST", "/api/recognitions", {"headers": officer, "json": {"id_number": ID, "purpose": "nope"}}, 422,
         "STORE_007"),
        ("POST", "/api/recognitions", {"headers": officer, "json": {"id_number": ID, "purpose": "ltc_benefit",
                                                                    "on": "tomorrow"}}, 422, "WEB_004"),
        ("POST", "/api/score", {"headers": assessor, "data": "x" * 300_000, "content_type": "application/json"}, 413,
         "WEB_010"),
    ]


@pytest.mark.parametrize("case", range(17))
def test_every_api_error_has_the_one_shape(app, client, case):
    method, path, kw, status, code = _cases(app)[case]
    resp = client.open(path, method=method, **kw)
    assert resp.status_code == status, resp.get_data(as_text=True)[:300]
    body = resp.get_json()
    jsonschema.validate(body, _error_schema(client))
    assert body["error"]["code"] == code and body["error"]["status"] == status
    if code.startswith(("RESP", "STORE", "INSTR", "SET")):
        assert body["error"]["problems"] and body["error"]["problems"][0]["code"] == code
    assert ID not in resp.get_data(as_text=True)


def test_error_cases_counted(app):
    assert len(_cases(app)) == 17                  # keep range(17) above in step with _cases


def test_internal_errors_use_the_shape_too(app, client, monkeypatch):
    from web import forms
    monkeypatch.setattr(forms, "instruments", lambda: 1 / 0)     # what GET /api/instruments calls
    resp = client.get("/api/instruments", headers={"Authorization": f"Bearer {token_for(app, 'assessor')}"})
    assert resp.status_code == 500 and resp.get_json()["error"]["code"] == "WEB_008"


def test_pages_show_errors_as_pages(client):
    login(client, "assessor")
    resp = client.get("/assess/records/deadbeef")
    assert resp.status_code == 404 and "<html" in resp.get_data(as_text=True)
