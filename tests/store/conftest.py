"""Fixtures for the store tests: a fresh database per test on SQLite and (when configured) PostgreSQL."""
from __future__ import annotations

import os
import uuid
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

from assess.store import Store
from store_helpers import POLICY

PG_ENV = "ASSESS_TEST_PG_URL"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set: run `eval \"$(.ci/postgres.sh)\"` to test against PostgreSQL")
    name = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(base)
    with admin.begin() as c:
        c.execute(text(f"CREATE SCHEMA {name}"))
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options={quote('-csearch_path=' + name)}"
    with admin.begin() as c:
        c.execute(text(f"DROP SCHEMA {name} CASCADE"))
    admin.dispose()


@pytest.fixture
def policy_file(tmp_path):
    p = tmp_path / "policy.yaml"
    p.write_text(POLICY, encoding="utf-8")
    return p


@pytest.fixture
def make_store(url, tmp_path, policy_file):
    made = []

    def make(department="mca", keep="encrypted", **kw):
        s = Store(url, department=department, keys_dir=tmp_path / "keys", keep_id_number=keep,
                  policy=str(policy_file), **kw)
        s.init()
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


@pytest.fixture
def store(make_store):
    return make_store("mca")


@pytest.fixture
def nhsa(store, make_store):
    """The insurance office's node on the same store: a node asks only as its own department."""
    return make_store("nhsa")


