"""Smoke test of the installed wheel, from outside the checkout (scripts/test-wheel runs it).

Usage: python smoke_wheel.py WHEEL CHECKOUT, with the clean venv's python, in an empty
directory. It checks that the wheel holds the package only, that redis_conn is imported from
the venv (not the checkout), and runs a fresh ``django-admin startproject`` site's
``manage.py check`` and ``manage.py redis_pools``, and a tiny Flask app's
``flask redis pools``, every connection on an in-process FAKE server (no Redis server needed).
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

BIN = Path(sys.executable).parent

DJANGO_SETTINGS = """
INSTALLED_APPS += ["redis_conn.django"]
MIDDLEWARE += ["redis_conn.django.middleware.RequestPipelineMiddleware"]
REDIS_CONNECTIONS = {"default": {"FAKE": True}, "sessions": {"ALIAS": "default"}}
"""

DJANGO_VIEWS = """
from django.http import HttpResponse

from redis_conn.django import RedisHttpRequest


def hits(request: RedisHttpRequest) -> HttpResponse:
    count = request.redis.incr("hits")
    request.redis.execute()
    return HttpResponse(str(count.result))
"""

DJANGO_REQUEST = """
from django.test import Client
from django.test.utils import setup_test_environment

setup_test_environment()
for expected in (b"1", b"2"):
    response = Client().get("/hits/")
    assert (response.status_code, response.content) == (200, expected), response
print("request.redis ok")
"""

FLASK_APP = """
from flask import Flask

from redis_conn.flask import RedisConn, health

rc = RedisConn()
app = Flask(__name__)
app.config["REDIS_CONNECTIONS"] = {"default": {"FAKE": True}, "hits": {"ALIAS": "default"}}
rc.init_app(app)
app.add_url_rule("/health", view_func=health)
"""


def run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        command = " ".join(map(str, args))
        sys.exit(f"{command} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout + done.stderr


def check_wheel_contents(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names}
    dist_info = next(top for top in tops if top.endswith(".dist-info"))
    assert tops == {"redis_conn", dist_info}, f"the wheel holds more than the package: {tops}"
    for needed in ("redis_conn/py.typed", "redis_conn/django/management/commands/redis_pools.py"):
        assert needed in names, f"the wheel lacks {needed}"
    assert f"{dist_info}/licenses/LICENSE" in names, "the wheel lacks its license file"
    print(f"wheel: {len(names)} files, only redis_conn/ and {dist_info}/")


def check_import_location(checkout: Path) -> None:
    import redis_conn

    where = Path(redis_conn.__file__).resolve()
    assert checkout not in where.parents, f"redis_conn was imported from the checkout: {where}"
    assert checkout not in Path.cwd().resolve().parents, "run me outside the checkout"
    print(f"import: {where}")


def check_django(work: Path) -> None:
    site = work / "django_site"
    site.mkdir()
    run(BIN / "django-admin", "startproject", "smoke_site", ".", cwd=site)
    settings = site / "smoke_site" / "settings.py"
    settings.write_text(settings.read_text() + DJANGO_SETTINGS)
    (site / "smoke_site" / "views.py").write_text(DJANGO_VIEWS)
    urls = site / "smoke_site" / "urls.py"
    urls.write_text(
        urls.read_text().replace(
            "urlpatterns = [",
            "from smoke_site.views import hits\n"
            "from redis_conn.django.views import health\n\n"
            "urlpatterns = [\n    path('hits/', hits),\n    path('health/', health),",
        )
    )
    manage = site / "manage.py"
    out = run(sys.executable, manage, "check", cwd=site)
    assert "System check identified no issues" in out, out
    table = run(sys.executable, manage, "redis_pools", cwd=site)
    lines = table.splitlines()
    assert lines[1].split()[:4] == ["default", "fake", "fakeredis://", "ok"], table
    assert lines[2].split()[:4] == ["sessions", "->", "default", "fake"], table
    assert lines[-1].startswith("overall: ok"), table
    report = json.loads(run(sys.executable, manage, "redis_pools", "--json", cwd=site))
    assert [c["name"] for c in report["connections"]] == ["default", "sessions"], report
    print(run(sys.executable, manage, "shell", "-c", DJANGO_REQUEST, cwd=site).strip())
    print("django: check, redis_pools and a request through the middleware")


def check_flask(work: Path) -> None:
    app_dir = work / "flask_app"
    app_dir.mkdir()
    (app_dir / "smoke_app.py").write_text(FLASK_APP)
    table = run(BIN / "flask", "--app", "smoke_app", "redis", "pools", cwd=app_dir)
    lines = table.splitlines()
    assert lines[1].split()[:4] == ["default", "fake", "fakeredis://", "ok"], table
    assert lines[2].split()[:3] == ["hits", "->", "default"], table
    assert lines[-1].startswith("overall: ok"), table
    print("flask: redis pools")


def main() -> None:
    wheel, checkout = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    work = Path.cwd()
    check_wheel_contents(wheel)
    check_import_location(checkout)
    check_django(work)
    check_flask(work)


if __name__ == "__main__":
    main()
