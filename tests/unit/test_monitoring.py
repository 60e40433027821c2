"""Drift statistics, extra-host checks (a real TLS server on loopback), the young-stack message and the
UI's monitoring views."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ancora.config import Settings
from ancora.monitoring.drift import (
    Reference,
    Thresholds,
    categorical_drift,
    compare,
    numeric_drift,
    report_html,
)
from ancora.monitoring.first_run import YoungState
from ancora.monitoring.health_watch import (
    check_dns,
    check_tls,
    run_extra_checks,
)
from ancora.schema import FEATURE_NAMES, LABEL_NAME
from ancora.ui import views
from tests.support.simulator import free_port


@pytest.fixture(scope="module")
def data(covertype_csv: Path) -> pd.DataFrame:
    return pd.read_csv(covertype_csv)


def test_the_same_distribution_does_not_drift_and_a_shifted_one_does(data: pd.DataFrame) -> None:
    reference = Reference("4", "run", data.iloc[:8000][list(FEATURE_NAMES)], data.iloc[:8000][LABEL_NAME])
    same = data.iloc[10000:12000]
    calm = compare(
        reference, same[list(FEATURE_NAMES)], same[LABEL_NAME], Thresholds(), kind="batch", subject="b1"
    )
    assert calm.drifted_features == [] and not calm.breached
    assert calm.current_rows == 2000 and calm.reference_rows == 8000 and len(calm.features) == 12
    moved = same[list(FEATURE_NAMES)].copy()
    for name in ("Elevation", "Slope", "Aspect", "Hillshade_9am", "Hillshade_Noon", "Hillshade_3pm"):
        moved[name] = moved[name] + 2 * moved[name].std()
    moved["Wilderness_Area"] = "Cache"
    shifted = compare(reference, moved, pd.Series([3] * 2000), Thresholds(), kind="batch", subject="b2")
    assert {"Elevation", "Slope", "Wilderness_Area"} <= set(shifted.drifted_features)
    assert shifted.class_mix_drifted and shifted.breached
    assert shifted.class_mix["current"] == {"3": 1.0}
    assert "BREACHED" in report_html(shifted) and "Wilderness_Area" in report_html(shifted)


def test_the_statistics_are_evidently_s_defaults() -> None:
    assert numeric_drift(pd.Series([1.0, 2.0, 3.0]), pd.Series([1.0, 2.0, 3.0])) == 0.0
    assert numeric_drift(pd.Series([5.0, 5.0]), pd.Series([6.0])) == 1.0, "constant reference, moved"
    shift = numeric_drift(pd.Series(np.arange(1000.0)), pd.Series(np.arange(1000.0) + 28.9))
    assert shift == pytest.approx(28.9 / np.std(np.arange(1000.0)))
    assert categorical_drift(pd.Series(["a", "b"]), pd.Series(["c", "c"])) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, ssl.SSLContext, dt.datetime]]:
    """A real TLS listener on loopback with a self-signed certificate valid for 5 days."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    expires = (now + dt.timedelta(days=5)).replace(microsecond=0)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(expires)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_path, key_path)
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with server_context.wrap_socket(connection, server_side=True) as wrapped:
                    wrapped.recv(1)
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_context = ssl.create_default_context(cafile=str(cert_path))
    try:
        yield port, client_context, expires
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_tls_expiry_is_read_from_the_server_and_warned_about(
    tls_server: tuple[int, ssl.SSLContext, dt.datetime],
) -> None:
    port, context, expires = tls_server
    assert check_tls("localhost", port, 2, context).startswith(f"certificate valid until {expires:%Y-%m-%d}")
    with pytest.raises(ValueError, match="certificate expires"):
        check_tls("localhost", port, 30, context)
    with pytest.raises(ssl.SSLError):
        check_tls("localhost", port, 2)  # not trusted by the system store: a failure, not a pass


def test_extra_hosts_are_checked(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(
        monitor_extra_hosts=json.dumps(
            [
                {"name": "closed", "kind": "tcp", "host": "127.0.0.1", "port": port},
                {"kind": "dns", "host": "localhost"},
            ]
        )
    )
    closed, dns = run_extra_checks(settings)
    assert (closed.name, closed.ok) == ("closed", False) and "Connection refused" in closed.detail
    assert dns.name == "dns localhost"
    assert (dns.ok and "127.0.0.1" in dns.detail) or "::1" in dns.detail
    assert check_dns("localhost").startswith("resolves to")


def test_the_young_stack_says_what_it_waits_for() -> None:
    assert (
        YoungState(200, 500, None).message().startswith("waiting for the first champion: 200 validated rows")
    )
    assert "300 more needed" in YoungState(200, 500, None).message()
    assert "enough to train" in YoungState(900, 500, None).message()
    assert not YoungState(900, 500, "3").waiting


def test_tasks_are_filtered_per_user_and_linked_to_mlflow() -> None:
    tasks = [
        {"id": "a", "owner": "ada", "status": "RUNNING", "run_id": "r1", "runner_location": "local"},
        {"id": "b", "owner": "bob", "status": "COMPLETED", "run_id": None, "runner_location": "atena02"},
    ]
    assert [t["id"] for t in views.visible_tasks(tasks, "ada", False)] == ["a"]
    assert [t["id"] for t in views.visible_tasks(tasks, "ada", True)] == ["a", "b"]
    frame = views.tasks_frame(tasks, "http://mlflow:5000/")
    assert frame.loc[0, "MLflow"] == "http://mlflow:5000/#/runs/r1" and pd.isna(frame.loc[1, "MLflow"])


def test_drift_history_becomes_one_line_per_feature() -> None:
    history = pd.DataFrame(
        {
            "created_at": pd.to_datetime(["2026-12-01T10:00Z", "2026-12-01T10:00Z", "2026-12-01T11:00Z"]),
            "kind": ["batch", "batch", "batch"],
            "feature": ["Elevation", "Slope", "Elevation"],
            "score": [0.01, 0.02, 0.3],
        }
    )
    pivot = views.drift_pivot(history, "batch")
    assert list(pivot.columns) == ["Elevation", "Slope"] and pivot["Elevation"].tolist() == [0.01, 0.3]
    assert views.drift_pivot(history, "served").empty
    mix = views.class_mix_frame(json.dumps({"reference": {"1": 0.4, "2": 0.6}, "current": {"2": 1.0}}))
    assert mix["served / predicted"].tolist() == [0.0, 1.0] and mix.loc[0, "class"] == "1 Spruce/Fir"
