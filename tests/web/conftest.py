"""Fixtures for web/ (flaskr style): a fresh app on a temporary store and database for every test."""
from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:          # web/ is not an installed package; tests import it from the checkout
    sys.path.insert(0, str(REPO))

from assess import idnumber

try:
    import flask  # noqa: F401
except ImportError:                     # the web extra is not installed: say so rather than fail
    collect_ignore_glob = ["test_*.py"]

    def pytest_report_header(config):
        return "tests/web skipped: Flask is not installed (run .ci/web.sh, or pip install -e '.[web]')"

PASSWORD = "correct-horse-battery"
ANSWERS = json.loads((REPO / "examples" / "gbt42195-answers.json").read_text(encoding="utf-8"))
USERS = {  # role key → (username, role, department)
    "assessor": ("assessor1", "assessor", "mca"),
    "assessor2": ("assessor2", "assessor", "mca"),
    "reviewer": ("reviewer", "reviewer", "mca"),
    "officer": ("officer", "officer", "nhsa"),
    "admin": ("admin", "admin", "mca"),
}


def make_id(body17: str = "11010519491231002") -> str:
    """A valid 公民身份号码 from 17 digits (synthetic: never a real person's)."""
    return body17 + idnumber.check_char(body17)


RECENT = (dt.date.today() - dt.timedelta(days=10)).isoformat()   # inside every demo policy window
ID = make_id()                       # 110105 1949-12-31 seq 002
ID2 = make_id("32010219400101003")


@pytest.fixture
def store_config(tmp_path):
    cfg = tmp_path / "store.yaml"
    cfg.write_text(yaml.safe_dump({"url": str(tmp_path / "store.db"), "department": "mca",
                                   "keys_dir": str(tmp_path / "keys"), "keep_id_number": "encrypted",
                                   "policy": str(REPO / "examples" / "recognition-policy.yaml")}), encoding="utf-8")
    from assess.store import Store
    st = Store.from_config(cfg)
    st.init()
    st.close()
    return cfg


@pytest.fixture
def config(tmp_path, store_config):
    return {"TESTING": True, "SECRET_KEY": "test-secret", "DATABASE": str(tmp_path / "web.db"),
            "STORE_CONFIG": str(store_config), "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
            "LOGIN_MAX_FAILURES": 3, "LOGIN_WINDOW_SECONDS": 600}


@pytest.fixture
def make_app(tmp_path, monkeypatch, config):
    monkeypatch.setenv("ASSESS_WEB_INSTANCE", str(tmp_path / "instance"))
    from web import create_app
    made = []

    def make(**overrides):
        app = create_app({**config, **overrides})
        with app.app_context():
            from web import accounts
            for username, role, dept in USERS.values():
                accounts.create_user(username, PASSWORD, role, dept, username.upper(), "测试评估中心")
        made.append(app)
        return app
    yield make
    for app in made:
        st = app.extensions.get("assess_store")
        if st is not None:
            st.close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


def csrf(client) -> str:
    client.get("/auth/login")
    with client.session_transaction() as s:
        return s["csrf"]


def login(client, who: str, password: str = PASSWORD):
    tok = csrf(client)
    return client.post("/auth/login", data={"username": USERS[who][0] if who in USERS else who,
                                            "password": password, "csrf_token": tok})


def token_for(app, who: str) -> str:
    from web import accounts
    with app.app_context():
        user = next(u for u in accounts.list_users() if u.username == USERS[who][0])
        return accounts.issue_token(user.id, "test")


@pytest.fixture
def world(app):
    """A person, an open draft of assessor1 and a record submitted by assessor1 and assessor2."""
    import assess
    from web import accounts, drafts, stores
    with app.test_request_context():
        users = {u.username: u for u in accounts.list_users()}
        a1, a2 = users["assessor1"], users["assessor2"]
        person = drafts.register_person(ID, "张三", a1.id)
        did = drafts.create_draft(person["id"], a1.id, "gbt42195-2022", "2022", RECENT, "first")
        res = assess.score_one("gbt42195-2022", ANSWERS)
        done = drafts.create_draft(person["id"], a1.id, "gbt42195-2022", "2022", RECENT, "first")
        rid, _ = stores.submit(done, res, ANSWERS, id_number=ID, assessed_on=RECENT,
                               assessors=["A1", "A2"], organisation="测试评估中心", reason="first",
                               user_id=a1.id, cosigner_id=a2.id)
        drafts.mark_submitted(done, rid)
        return {"person": person["id"], "draft": did, "record": rid, "users": {k: v.id for k, v in users.items()}}
