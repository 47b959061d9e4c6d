"""The session secret: random per instance (made once, mode 600, shared by every process on the same
instance folder) unless one is given; a cookie signed with the old published constant is refused."""
from __future__ import annotations

import multiprocessing
import stat

import pytest
from flask import Flask

from app import create_app, prepare
from app.auth import create_user
from app.config import CONFIGS
from app.security import SECRET_FILE, instance_secret
from tests.conftest import ADMIN

OLD_CONSTANT = "dev-only-not-secret"  # the development key that used to be published in app/config.py


@pytest.fixture
def instance(tmp_path, monkeypatch, tiny_registry):
    monkeypatch.setenv("RIIM_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("RIIM_MODELS_DIR", str(tiny_registry.root))
    monkeypatch.delenv("RIIM_SECRET_KEY", raising=False)
    return tmp_path / "instance"


def forged_session(secret: str, user_id: int) -> str:
    """A Flask session cookie for ``user_id`` signed with ``secret``."""
    forger = Flask("forger")
    forger.secret_key = secret
    return forger.session_interface.get_signing_serializer(forger).dumps({"user_id": user_id})


@pytest.mark.parametrize("name", ["development", "production"])
def test_a_cookie_signed_with_the_old_constant_is_refused(instance, name):
    app = create_app(name)
    prepare(app)
    with app.app_context():
        admin_id = create_user(**ADMIN).id
    client = app.test_client()
    client.set_cookie("session", forged_session(OLD_CONSTANT, admin_id))
    assert client.get("/api/v1/auth/me").json["user"] is None
    client.set_cookie("session", forged_session(app.config["SECRET_KEY"], admin_id))  # control: the real key
    assert client.get("/api/v1/auth/me").json["user"]["username"] == ADMIN["username"]


def test_no_configuration_carries_a_key():
    assert all(getattr(config, "SECRET_KEY") is None for config in CONFIGS.values())


def test_apps_on_the_same_instance_share_one_generated_key_readable_only_by_the_owner(instance):
    first, second = create_app("development"), create_app("production")
    key = (instance / SECRET_FILE).read_text()
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"] == key and len(key) == 64
    assert stat.S_IMODE((instance / SECRET_FILE).stat().st_mode) == 0o600
    assert not [path.name for path in instance.iterdir() if path.name.startswith(".tmp-")]


def test_processes_starting_together_agree_on_one_key(tmp_path):
    """Like gunicorn workers booting at once on a fresh instance folder: one key, written once."""
    with multiprocessing.get_context("fork").Pool(8) as pool:
        keys = pool.map(instance_secret, [tmp_path] * 32)
    assert len(set(keys)) == 1 and keys[0] == (tmp_path / SECRET_FILE).read_text()
    assert sorted(path.name for path in tmp_path.iterdir()) == [SECRET_FILE]


def test_a_given_key_is_used_and_nothing_is_written(instance, monkeypatch):
    monkeypatch.setenv("RIIM_SECRET_KEY", "from-the-environment-" + "x" * 40)
    assert create_app("production").config["SECRET_KEY"].startswith("from-the-environment-")
    monkeypatch.delenv("RIIM_SECRET_KEY")
    (instance / "config.py").write_text("SECRET_KEY = 'from-the-instance-file-0123456789abcdef'\n")
    assert create_app("development").config["SECRET_KEY"] == "from-the-instance-file-0123456789abcdef"
    assert not (instance / SECRET_FILE).exists()


def test_a_key_file_open_to_others_is_made_private(tmp_path):
    key = instance_secret(tmp_path)
    (tmp_path / SECRET_FILE).chmod(0o644)
    assert instance_secret(tmp_path) == key
    assert stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode) == 0o600
