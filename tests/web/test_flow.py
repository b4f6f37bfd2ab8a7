"""The tablet flow, the look-up, the API, and privacy, through the Flask test client."""
from __future__ import annotations

import logging
import re

import pytest
from conftest import ANSWERS, ID, ID2, RECENT, csrf, login, token_for

import assess

GBT = "gbt42195-2022"


def _steps():
    from web import forms
    return forms.steps(assess.load_instrument(GBT))


def _form_value(v):
    return "、".join(v) if isinstance(v, list) else str(v)


@pytest.fixture
def assessor(app):
    client = app.test_client()
    login(client, "assessor")
    return client


def _start(client, number=ID2, name="李四"):
    tok = csrf(client)
    resp = client.post("/assess/people", data={"id_number": number, "name": name, "csrf_token": tok})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    pid = int(resp.headers["Location"].rsplit("/", 1)[1])
    resp = client.post(f"/assess/people/{pid}/drafts", data={"instrument": f"{GBT}@2022", "assessed_on": RECENT,
                                                             "reason": "first", "csrf_token": tok})
    assert resp.status_code == 302
    return re.search(r"/drafts/([0-9a-f]+)/", resp.headers["Location"]).group(1)


def _fill(client, did, answers=ANSWERS):
    tok = csrf(client)
    for s in _steps():
        data = {q.id: _form_value(answers[q.id]) for q in s.questions if q.id in answers}
        resp = client.post(f"/assess/drafts/{did}/step/{s.index}", data={**data, "action": "next", "csrf_token": tok})
        assert resp.status_code == 302, resp.get_data(as_text=True)[:500]


def _submit(client, did, cosigner="assessor2", password="correct-horse-battery"):
    return client.post(f"/assess/drafts/{did}/submit", data={"cosigner": cosigner, "cosigner_password": password,
                                                             "confirm": "1", "csrf_token": csrf(client)})


def test_form_is_generated_from_the_instrument(assessor):
    did = _start(assessor)
    ins = assess.load_instrument(GBT)
    for s in _steps():
        html = assessor.get(f"/assess/drafts/{did}/step/{s.index}").get_data(as_text=True)
        assert s.title in html
        for q in s.questions:
            assert f'data-qid="{q.id}"' in html and q.label.zh in html
            for o in q.options:
                assert f'name="{q.id}" value="{o.key}"' in html
    assert len(_steps()) == len(ins.domains) + 1


def test_full_tablet_flow_stores_a_signed_record(app, assessor):
    did = _start(assessor)
    _fill(assessor, did)
    review = assessor.get(f"/assess/drafts/{did}/step/{len(_steps())}").get_data(as_text=True)
    expected = assess.score_one(GBT, ANSWERS)
    assert f"{expected.level} 级 {expected.level_label}" in review
    resp = _submit(assessor, did)
    assert resp.status_code == 302 and "/assess/records/" in resp.headers["Location"]
    page = assessor.get(resp.headers["Location"]).get_data(as_text=True)
    assert expected.level_label in page and "已验证" in page and "<svg" in page
    for step in expected.trace:
        assert step["zh"] in page
    # submitting again (a double tap, or a retry) stores nothing new
    again = _submit(assessor, did)
    assert again.headers["Location"] == resp.headers["Location"]
    from web import stores
    with app.app_context():
        assert sum(1 for _ in stores.get_store().verify()) == 1


def test_next_refuses_a_step_with_required_items_missing(assessor):
    did = _start(assessor)
    s = _steps()[1]
    data = {q.id: _form_value(ANSWERS[q.id]) for q in s.questions[:-1]}
    resp = assessor.post(f"/assess/drafts/{did}/step/1", data={**data, "action": "next", "csrf_token": csrf(assessor)})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/step/1?check=1")
    html = assessor.get(resp.headers["Location"]).get_data(as_text=True)
    assert f'class="question highlight" id="q-{s.questions[-1].id}"' in html
    assert s.questions[-1].id in html and "必答" in html
    # what was answered was kept
    html = assessor.get(f"/assess/drafts/{did}/step/1").get_data(as_text=True)
    q = s.questions[0]
    assert re.search(rf'name="{re.escape(q.id)}" value="{ANSWERS[q.id]}" checked', html)


def test_autosave_keeps_answers_and_returns_the_engines_running_scores(assessor):
    did = _start(assessor)
    b1 = {k: str(v) for k, v in ANSWERS.items() if k.startswith("B.1.")}
    resp = assessor.post(f"/assess/drafts/{did}/answers", json={"answers": b1},
                         headers={"X-CSRF-Token": csrf(assessor)})
    body = resp.get_json()
    expected = assess.score_one(GBT, {k: ANSWERS[k] for k in b1}, allow_incomplete=True)
    assert body["running"]["domains"] == expected.domains and body["running"]["total"] is None
    assert body["running"]["missing"] > 0
    html = assessor.get(f"/assess/drafts/{did}/step/1").get_data(as_text=True)
    assert re.search(r'name="B.1.1" value="4" checked', html)
    # clearing an answer with null
    assessor.post(f"/assess/drafts/{did}/answers", json={"answers": {"B.1.1": None}},
                  headers={"X-CSRF-Token": csrf(assessor)})
    assert not re.search(r'name="B.1.1" value="\d" checked', assessor.get(f"/assess/drafts/{did}/step/1").get_data(
        as_text=True))


def test_autosave_reports_inconsistent_answers(assessor):
    did = _start(assessor)
    resp = assessor.post(f"/assess/drafts/{did}/answers", json={"answers": {"A.5.11": "1", "B.3.9": "2"}},
                         headers={"X-CSRF-Token": csrf(assessor)})
    run = resp.get_json()["running"]
    assert run["status"] == "invalid" and run["problems"][0]["code"] == "RESP_004"


def test_autosave_rejects_a_malformed_body(assessor):
    did = _start(assessor)
    resp = assessor.post(f"/assess/drafts/{did}/answers", json=[1], headers={"X-CSRF-Token": csrf(assessor)})
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "WEB_004"


@pytest.mark.parametrize("cosigner,password", [("assessor1", "correct-horse-battery"),   # oneself
                                               ("assessor2", "wrong-password"),
                                               ("reviewer", "correct-horse-battery"),    # not an assessor
                                               ("", "")])
def test_the_second_assessor_must_really_sign(assessor, cosigner, password):
    did = _start(assessor)
    _fill(assessor, did)
    resp = _submit(assessor, did, cosigner, password)
    assert resp.status_code == 422 and "第二评估员" in resp.get_data(as_text=True)


def test_submit_needs_the_declaration(assessor):
    did = _start(assessor)
    _fill(assessor, did)
    resp = assessor.post(f"/assess/drafts/{did}/submit", data={"cosigner": "assessor2",
                                                               "cosigner_password": "correct-horse-battery",
                                                               "csrf_token": csrf(assessor)})
    assert resp.status_code == 422


def test_submit_with_missing_answers_flashes_the_codes(assessor):
    did = _start(assessor)
    resp = _submit(assessor, did)
    assert resp.status_code == 422 and "RESP_003" in resp.get_data(as_text=True)


def test_one_assessor_is_enough_when_configured(make_app):
    client = make_app(ASSESSORS_REQUIRED=1).test_client()
    login(client, "assessor")
    did = _start(client)
    _fill(client, did)
    resp = client.post(f"/assess/drafts/{did}/submit", data={"confirm": "1", "csrf_token": csrf(client)})
    assert resp.status_code == 302


@pytest.mark.parametrize("number,why", [(ID[:-1] + ("0" if ID[-1] != "0" else "1"), "校验码"),
                                        ("12345", "18位"), ("11010520991231002X", "晚于")])
def test_bad_id_numbers_are_refused_and_shown_masked(assessor, number, why):
    resp = assessor.post("/assess/people", data={"id_number": number, "name": "x", "csrf_token": csrf(assessor)})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422 and why in html
    if len(number) == 18:
        assert number not in html and number[:6] in html


def test_a_new_person_needs_a_name(assessor):
    resp = assessor.post("/assess/people", data={"id_number": ID2, "name": "", "csrf_token": csrf(assessor)})
    assert resp.status_code == 422 and "姓名" in resp.get_data(as_text=True)


def test_finding_a_registered_person(assessor, world):
    resp = assessor.post("/assess/people", data={"id_number": ID, "csrf_token": csrf(assessor)})
    assert resp.headers["Location"].endswith(f"/assess/people/{world['person']}")


def test_new_draft_validates_date_and_reason(assessor, world):
    tok = csrf(assessor)
    for data in ({"assessed_on": "2999-01-01", "reason": "first"}, {"assessed_on": "2025-01-01", "reason": "nope"}):
        resp = assessor.post(f"/assess/people/{world['person']}/drafts",
                             data={"instrument": f"{GBT}@2022", "csrf_token": tok, **data})
        assert resp.headers["Location"].endswith(f"/assess/people/{world['person']}")
    resp = assessor.post(f"/assess/people/{world['person']}/drafts",
                         data={"instrument": "nope@1", "assessed_on": "2025-01-01", "reason": "first",
                               "csrf_token": tok})
    assert resp.status_code == 404 and "INSTR_006" in resp.get_data(as_text=True)


# ------------------------------------------------------------------ look-up
def _lookup(client, number=ID, purpose="ltc_benefit", on=""):
    return client.post("/lookup/", data={"id_number": number, "purpose": purpose, "on": on,
                                         "csrf_token": csrf(client)})


def test_officer_sees_the_recognised_grade_with_its_source_and_reason(app, world):
    client = app.test_client()
    login(client, "officer")
    html = _lookup(client).get_data(as_text=True)
    expected = assess.score_one(GBT, ANSWERS)
    assert f'id="recognised-level">{expected.level} 级' in html and world["record"][:16] in html
    assert "recognised — assessed" in html
    assert re.search(r'id="recognised-detail">mca（[^）]+）于 \d{4}-\d\d-\d\d 评估，至 \d{4}-\d\d-\d\d 已 \d+ 天，'
                     r'依据政策 ', html), html
    assert ID not in html and ID[:6] + "*" * 11 + ID[-1] in html
    from web import stores
    with app.app_context():
        audit = stores.get_store().audit_rows()
    # The officer of nhsa, through this front end's store, which is mca's node: both are named.
    assert [(a["department"], a["actor"], a["purpose"], a["record_id"]) for a in audit] == \
        [("nhsa", "officer @ mca", "ltc_benefit", world["record"])]


def test_lookup_of_an_unknown_person_says_why(app):
    client = app.test_client()
    login(client, "officer")
    html = _lookup(client, ID2).get_data(as_text=True)
    assert "没有评估记录" in html and "no_record" in html
    assert 'id="recognised-detail">没有此人的评估记录' in html


def test_every_lookup_is_logged(app, world):
    client = app.test_client()
    login(client, "officer")
    _lookup(client)
    _lookup(client, ID2)
    from web.db import get_db
    with app.app_context():
        rows = [dict(r) for r in get_db().execute("SELECT purpose, outcome FROM lookups")]
    assert rows == [{"purpose": "ltc_benefit", "outcome": "recognised"},
                    {"purpose": "ltc_benefit", "outcome": "no_record"}]


@pytest.mark.parametrize("data", [{"number": "123"}, {"purpose": "nope"}, {"on": "yesterday"}])
def test_lookup_validates_its_input(app, data):
    client = app.test_client()
    login(client, "officer")
    assert _lookup(client, **data).status_code == 422


def test_lookup_never_takes_the_id_number_from_the_url(app, world):
    client = app.test_client()
    login(client, "officer")
    html = client.get(f"/lookup/?id_number={ID}&purpose=ltc_benefit").get_data(as_text=True)
    assert "查询结果" not in html


def test_reviewer_revokes_and_the_lookup_says_so(app, world):
    reviewer = app.test_client()
    login(reviewer, "reviewer")
    assert world["record"][:16] in reviewer.get("/assess/records").get_data(as_text=True)
    resp = reviewer.post(f"/assess/records/{world['record']}/revoke", data={"reason": "录入错误",
                                                                           "csrf_token": csrf(reviewer)})
    assert resp.status_code == 302
    assert "已撤销" in reviewer.get(f"/assess/records/{world['record']}").get_data(as_text=True)
    officer = app.test_client()
    login(officer, "officer")
    html = _lookup(officer).get_data(as_text=True)
    assert "记录已撤销" in html and "撤销：录入错误" in html


# ------------------------------------------------------------------ API
def _submission(sid="api-sub-0001", **kw):
    return {"submission_id": sid, "instrument": GBT, "answers": ANSWERS, "id_number": ID2, "assessed_on": RECENT,
            "assessors": ["甲", "乙"], "reason": "first", **kw}


def test_api_submission_is_stored_exactly_once(app, client):
    h = {"Authorization": f"Bearer {token_for(app, 'assessor')}"}
    first = client.post("/api/submissions", json=_submission(), headers=h)
    again = client.post("/api/submissions", json=_submission(), headers=h)
    assert first.status_code == 201 and again.status_code == 200
    assert first.get_json()["record_id"] == again.get_json()["record_id"]
    assert first.get_json()["stored"] and not again.get_json()["stored"]
    assert ID2 not in first.get_data(as_text=True)
    from web import stores
    with app.app_context():
        assert sum(1 for _ in stores.get_store().verify()) == 1
    rec = client.post("/api/recognitions", json={"id_number": ID2, "purpose": "ltc_benefit"},
                      headers={"Authorization": f"Bearer {token_for(app, 'officer')}"}).get_json()
    assert rec["recognised"] and rec["level"] == first.get_json()["level"]
    assert rec["record"]["record_id"] == first.get_json()["record_id"]


def test_api_score_matches_score_one(app, client):
    h = {"Authorization": f"Bearer {token_for(app, 'officer')}"}
    body = client.post("/api/score", json={"instrument": GBT, "answers": ANSWERS}, headers=h).get_json()
    assert body == assess.score_one(GBT, ANSWERS).to_dict()
    body = client.post("/api/score", json={"instrument": GBT, "answers": {"B.1.1": 4}, "allow_incomplete": True},
                       headers=h).get_json()
    assert body["status"] == "incomplete" and body["level"] is None


def test_revoked_token_stops_working(app, client):
    tok = token_for(app, "assessor")
    h = {"Authorization": f"Bearer {tok}"}
    assert client.get("/api/instruments", headers=h).status_code == 200
    from web import accounts
    with app.app_context():
        accounts.revoke_token(accounts.list_tokens()[-1]["id"])
    assert client.get("/api/instruments", headers=h).status_code == 401


def test_openapi_names_every_api_route(app, client):
    spec = client.get("/api/openapi.json").get_json()
    routes = {r.rule for r in app.url_map.iter_rules() if r.rule.startswith("/api/")}
    assert routes == set(spec["paths"])
    for path, ops in spec["paths"].items():
        rule = next(r for r in app.url_map.iter_rules() if r.rule == path)
        assert {m.upper() for m in ops} == rule.methods - {"HEAD", "OPTIONS"}


# ------------------------------------------------------------------ admin
def test_admin_creates_accounts_and_tokens(app):
    client = app.test_client()
    login(client, "admin")
    tok = csrf(client)
    resp = client.post("/auth/users", data={"username": "sys-nhsa", "password": "long-enough-pw", "role": "officer",
                                            "department": "nhsa", "csrf_token": tok})
    assert resp.status_code == 302
    html = client.get("/auth/users").get_data(as_text=True)
    assert "sys-nhsa" in html
    from web import accounts
    with app.app_context():
        uid = next(u.id for u in accounts.list_users() if u.username == "sys-nhsa")
    html = client.post(f"/auth/users/{uid}/tokens", data={"csrf_token": tok}).get_data(as_text=True)
    token = re.search(r'id="new-token">(ast_[^<]+)<', html).group(1)
    assert app.test_client().get("/api/instruments", headers={"Authorization": f"Bearer {token}"}).status_code == 200


@pytest.mark.parametrize("data,msg", [
    ({"username": "x y", "role": "officer", "department": "nhsa"}, "用户名"),
    ({"username": "short", "password": "short", "role": "officer", "department": "nhsa"}, "密码"),
    ({"username": "a-n", "role": "assessor", "department": "nhsa"}, "发证部门"),
    ({"username": "a-n", "role": "officer", "department": "nope"}, "部门"),
    ({"username": "assessor1", "role": "officer", "department": "nhsa"}, "已存在"),
    ({"username": "a-n", "role": "god", "department": "nhsa"}, "角色"),
])
def test_admin_account_validation(app, data, msg):
    client = app.test_client()
    login(client, "admin")
    resp = client.post("/auth/users", data={"password": "long-enough-pw", **data, "csrf_token": csrf(client)})
    assert resp.status_code == 422 and msg in resp.get_data(as_text=True)


def test_admin_cannot_deactivate_themself(app, world):
    client = app.test_client()
    login(client, "admin")
    resp = client.post(f"/auth/users/{world['users']['admin']}/active", data={"active": "0",
                                                                             "csrf_token": csrf(client)})
    assert resp.status_code == 400


# ------------------------------------------------------------------ privacy
def test_full_id_numbers_never_reach_a_page_or_a_log(app, caplog):
    caplog.set_level(logging.DEBUG)
    client = app.test_client()
    login(client, "assessor")
    did = _start(client, ID, "张三")
    bodies = [client.get(f"/assess/drafts/{did}/step/{i}").get_data(as_text=True) for i in range(len(_steps()) + 1)]
    _fill(client, did)
    resp = _submit(client, did)
    bodies.append(client.get(resp.headers["Location"]).get_data(as_text=True))
    bodies.append(client.get("/assess/").get_data(as_text=True))
    officer = app.test_client()
    login(officer, "officer")
    bodies.append(_lookup(officer).get_data(as_text=True))
    for b in bodies:
        assert ID not in b
    assert ID not in caplog.text
    from web.db import get_db
    with app.app_context():
        dump = "\n".join(get_db().iterdump())
    assert ID not in dump          # the web database keeps it encrypted only


def test_whole_numbers_and_free_text_get_one_input_each(assessor):
    """GB/T 26341 asks the age and IQ as whole numbers (not 131 radio buttons); MZ/T 039 keeps free
    text (A.2.13.3 慢性疾病): one input each, and what is posted is stored as the engine reads it."""
    tok = csrf(assessor)
    resp = assessor.post("/assess/people", data={"id_number": ID2, "name": "李四", "csrf_token": tok})
    pid = int(resp.headers["Location"].rsplit("/", 1)[1])
    for iid, version, field, posted, stored in (("gbt26341-2010", "2010", "age_years", "30", 30),
                                                 ("mzt039-2013", "2013", "A.2.13.3", "高血压", "高血压")):
        resp = assessor.post(f"/assess/people/{pid}/drafts", data={"instrument": f"{iid}@{version}",
                                                                    "assessed_on": RECENT, "reason": "first",
                                                                    "csrf_token": tok})
        did = re.search(r"/drafts/([0-9a-f]+)/", resp.headers["Location"]).group(1)
        page = assessor.get(f"/assess/drafts/{did}/step/0").get_data(as_text=True)
        block = page[page.index(f'data-qid="{field}"'):]
        block = block[:block.index("</fieldset>")]
        assert 'type="radio"' not in block and f'name="{field}"' in block
        if iid == "gbt26341-2010":
            assert 'type="number"' in block and 'max="130"' in block
        resp = assessor.post(f"/assess/drafts/{did}/step/0", data={field: posted, "action": "save", "csrf_token": tok})
        assert resp.status_code == 302
        page = assessor.get(f"/assess/drafts/{did}/step/0").get_data(as_text=True)
        assert f'value="{posted}"' in page
        from web import drafts
        with assessor.application.app_context():
            assert drafts.get_draft(did)["answers"][field] == stored
