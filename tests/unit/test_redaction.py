"""`ancora config show` never prints a password, wherever a setting carries one."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ancora.cli import app
from ancora.redaction import mask_url

SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"mysql+pymysql://ancora:{SECRET}@db:3306/ancora", "mysql+pymysql://ancora:***@db:3306/ancora"),
        (f"http://admin:{SECRET}@mlflow:5000", "http://admin:***@mlflow:5000"),
        (f"postgresql://db/x?user=a&password={SECRET}", "postgresql://db/x?user=a&password=***"),
        (
            f"mssql+pyodbc:///?odbc_connect=DRIVER%3D18%3BUID%3Dsa%3BPWD%3D{SECRET}",
            "mssql+pyodbc:///?odbc_connect=DRIVER%3D18%3BUID%3Dsa%3BPWD%3D***",
        ),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("sqlite:////tmp/a.db", "sqlite:////tmp/a.db"),
        ("not a url", "not a url"),
        ("*/5 * * * *", "*/5 * * * *"),
    ],
)
def test_a_url_keeps_its_shape_and_loses_its_password(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_config_show_masks_every_password(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "ANCORA_DATA_DB_URL": f"mysql+pymysql://ancora:{SECRET}@db:3306/ancora",
        "ANCORA_MLFLOW_TRACKING_URI": f"http://admin:{SECRET}@mlflow:5000",
        "ANCORA_MLFLOW_BACKEND_STORE_URI": f"mysql+pymysql://mlflow:{SECRET}@db/mlflow",
        "ANCORA_DATALAKE_URL": f"postgresql+psycopg://lake@db/lake?password={SECRET}",
        "ANCORA_DISPATCH_EVENTS_DB_URL": f"mysql+pymysql://ev:{SECRET}@db/ev",
        "ANCORA_ADMIN_TOKEN": SECRET,
        "ANCORA_AIRFLOW_PASSWORD": SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    shown = json.loads(result.output)
    assert shown["data_db_url"] == "mysql+pymysql://ancora:***@db:3306/ancora"
    assert shown["admin_token"] == "**********"
