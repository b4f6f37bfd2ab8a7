"""Who may do what: every route × every role, one test per cell (STYLE §10: parametrised).

``allow`` means the role gets past authentication and authorisation (any status but 401/403 and no
redirect to the login page); anonymous users are sent to the login page (pages) or get 401 (API).
"""
from __future__ import annotations

import pytest
from conftest import ANSWERS, ID, ID2, RECENT, csrf, login, token_for

ROLES = ("anon", "assessor", "reviewer", "officer", "admin")
ALL = set(ROLES) - {"anon"}
PUBLIC = set(ROLES)

# (method, path, body kind, roles allowed). Paths use {person}, {draft}, {record}, {user}, {token}.
PAGES = [
    ("GET", "/", None, ALL),
    ("GET", "/auth/login", None, PUBLIC),
    ("POST", "/auth/logout", "form", PUBLIC),
    ("GET", "/auth/users", None, {"admin"}),
    ("POST", "/auth/users", "new_user", {"admin"}),
    ("POST", "/auth/users/{user}/active", "form", {"admin"}),
    ("POST", "/auth/users/{user}/tokens", "form", {"admin"}),
    ("POST", "/auth/tokens/{token}/revoke", "form", {"admin"}),
    ("GET", "/assess/", None, {"assessor"}),
    ("POST", "/assess/people", "person", {"assessor"}),
    ("GET", "/assess/people/{person}", None, {"assessor"}),
    ("POST", "/assess/people/{person}/drafts", "draft", {"assessor"}),
    ("GET", "/assess/drafts/{draft}/step/0", None, {"assessor"}),
    ("POST", "/assess/drafts/{draft}/step/1", "form", {"assessor"}),
    ("POST", "/assess/drafts/{draft}/answers", "autosave", {"assessor"}),
    ("POST", "/assess/drafts/{draft}/submit", "form", {"assessor"}),
    ("GET", "/assess/records", None, {"reviewer"}),
    ("GET", "/assess/records/{record}", None, {"assessor", "reviewer"}),
    ("POST", "/assess/records/{record}/revoke", "revoke", {"reviewer"}),
    ("GET", "/lookup/", None, {"officer"}),
    ("POST", "/lookup/", "lookup", {"officer"}),
]
API = [
    ("GET", "/api/openapi.json", None, PUBLIC),
    ("GET", "/api/instruments", None, ALL),
    ("POST", "/api/score", "score", ALL),
    ("POST", "/api/submissions", "submission", {"assessor"}),
    ("POST", "/api/recognitions", "recognition", {"officer"}),
]


def _body(kind, tok):
    forms = {
        "form": {}, "new_user": {"username": "newbie", "password": "long-enough-pw", "role": "officer",
                                 "department": "nhsa"},
        "person": {"id_number": ID2, "name": "李四"}, "draft": {"instrument": "gbt42195-2022@2022",
                                                               "assessed_on": RECENT, "reason": "first"},
        "revoke": {"reason": "录入错误"}, "lookup": {"id_number": ID, "purpose": "ltc_benefit"},
    }
    if kind == "autosave":
        return {"json": {"answers": {"B.1.1": "4"}}, "headers": {"X-CSRF-Token": tok}}
    return {"data": {**forms.get(kind or "form", {}), "csrf_token": tok}}


def _api_body(kind):
    return {
        None: None,
        "score": {"instrument": "gbt42195-2022", "answers": ANSWERS},
        "submission": {"submission_id": "access-test-0001", "instrument": "gbt42195-2022", "answers": ANSWERS,
                       "id_number": ID2, "assessed_on": RECENT, "assessors": ["甲", "乙"], "reason": "first"},
        "recognition": {"id_number": ID, "purpose": "ltc_benefit"},
    }[kind]


def _path(template, world, app):
    from web import accounts
    with app.app_context():
        officer = next(u for u in accounts.list_users() if u.username == "officer")
        accounts.issue_token(officer.id, "victim")
        tok_id = accounts.list_tokens()[-1]["id"]
    return template.format(person=world["person"], draft=world["draft"], record=world["record"],
                           user=officer.id, token=tok_id)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method,template,kind,allowed", PAGES, ids=[f"{m} {p}" for m, p, _, _ in PAGES])
def test_page_access(app, world, role, method, template, kind, allowed):
    client = app.test_client()
    if role != "anon":
        assert login(client, role).status_code == 302
    tok = csrf(client)
    path = _path(template, world, app)
    resp = client.open(path, method=method, **(_body(kind, tok) if method == "POST" else {}))
    to_login = resp.status_code == 302 and resp.headers["Location"].endswith("/auth/login")
    if role in allowed:
        assert resp.status_code not in (401, 403, 404) and not (to_login and template != "/auth/logout"), \
            (resp.status_code, resp.get_data(as_text=True)[:300])
    elif role == "anon":
        assert to_login, resp.status_code
    else:
        assert resp.status_code == 403, resp.status_code


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method,path,kind,allowed", API, ids=[f"{m} {p}" for m, p, _, _ in API])
def test_api_access(app, world, role, method, path, kind, allowed):
    headers = {} if role == "anon" else {"Authorization": f"Bearer {token_for(app, role)}"}
    body = _api_body(kind)
    resp = app.test_client().open(path, method=method, headers=headers, **({"json": body} if body else {}))
    if role in allowed:
        assert resp.status_code in (200, 201), resp.get_json()
    else:
        assert resp.status_code == (401 if role == "anon" else 403)
        assert resp.get_json()["error"]["code"] == ("WEB_001" if role == "anon" else "WEB_002")


def test_other_assessor_cannot_open_a_draft_or_record(app, world):
    """Drafts belong to their owner; records to those who signed them (and the department's reviewers)."""
    from web import accounts
    with app.app_context():
        accounts.create_user("assessor3", "another-password", "assessor", "mca")
    client = app.test_client()
    assert login(client, "assessor3", "another-password").status_code == 302
    assert client.get(f"/assess/drafts/{world['draft']}/step/0").status_code == 404
    assert client.get(f"/assess/records/{world['record']}").status_code == 404


def test_session_of_a_deactivated_user_stops_working(app, world):
    client = app.test_client()
    login(client, "assessor")
    assert client.get("/assess/").status_code == 200
    from web import accounts
    with app.app_context():
        accounts.set_active(world["users"]["assessor1"], False)
    resp = client.get("/assess/")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/auth/login")
