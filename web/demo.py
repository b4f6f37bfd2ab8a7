"""A self-contained demo deployment: a store (keys, SQLite, the example recognition policy), a web
instance folder and demo accounts. For trying the app on one machine only, never for real data."""
from __future__ import annotations

import secrets
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
POLICY = REPO / "examples" / "recognition-policy.yaml"
DEMO_PASSWORD = "demo-password"     # printed at start; the demo binds to 127.0.0.1 only
DEMO_USERS = (  # username, display name, role, department, organisation
    ("assessor1", "王评估", "assessor", "mca", "示范市老年人能力评估中心"),
    ("assessor2", "李评估", "assessor", "mca", "示范市老年人能力评估中心"),
    ("reviewer", "赵审核", "reviewer", "mca", "示范市民政局"),
    ("officer", "陈经办", "officer", "nhsa", "示范市医疗保障局"),
    ("admin", "系统管理员", "admin", "mca", "示范市民政局"),
)


def prepare(base) -> Path:
    """Create (or reuse) a demo deployment under ``base``; returns the web instance folder."""
    base = Path(base).resolve()
    instance = base / "instance"
    instance.mkdir(parents=True, exist_ok=True)
    store_cfg = base / "store.yaml"
    if not store_cfg.exists():
        store_cfg.write_text(yaml.safe_dump({
            "url": str(base / "store.db"), "department": "mca", "keys_dir": str(base / "keys"),
            "keep_id_number": "encrypted", "policy": str(POLICY)}, allow_unicode=True), encoding="utf-8")
    from assess.store import Store
    st = Store.from_config(store_cfg)
    st.init()
    st.close()
    cfg = instance / "config.py"
    if not cfg.exists():
        cfg.write_text(f"SECRET_KEY = {secrets.token_hex(32)!r}\nSTORE_CONFIG = {str(store_cfg)!r}\n",
                       encoding="utf-8")
        cfg.chmod(0o600)
    app = make_app(instance)
    with app.app_context():
        from . import accounts
        have = {u.username for u in accounts.list_users()}
        for username, name, role, dept, org in DEMO_USERS:
            if username not in have:
                accounts.create_user(username, DEMO_PASSWORD, role, dept, name, org)
    return instance


def make_app(instance):
    import os

    from . import INSTANCE_ENV, create_app
    os.environ[INSTANCE_ENV] = str(instance)
    return create_app()
