"""cert_textfile.py: the metric value is the certificate's notAfter; chains, keys and junk are handled."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from monitoring import cert_textfile

from .support import tool


def make_cert(path: Path, cn: str, not_after: dt.datetime) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - dt.timedelta(days=30))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert


def test_metric_equals_not_after(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    edge_after = dt.datetime(2031, 5, 17, 12, 30, 0, tzinfo=dt.UTC)
    app_after = dt.datetime(2027, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    make_cert(certs / "edge.crt", "edge", edge_after)
    make_cert(certs / "app.pem", "app", app_after)
    make_cert(certs / "edge.chain.crt", "wrong", dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    (certs / "notes.crt").write_text("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    (certs / "readme.txt").write_text("ignored")
    out = tmp_path / "textfile" / "seclab_certs.prom"

    assert (
        cert_textfile.main(
            ["--cert-dir", str(certs), "--cert-dir", str(tmp_path / "missing"), "--out", str(out)]
        )
        == 0
    )

    text = out.read_text()
    values = dict(re.findall(r'^seclab_cert_not_after_seconds\{name="([^"]+)"\} (\d+)$', text, re.MULTILINE))
    assert values == {"edge": str(int(edge_after.timestamp())), "app": str(int(app_after.timestamp()))}
    assert re.search(r"^seclab_cert_read_errors 2$", text, re.MULTILINE)  # garbage file + missing dir
    assert out.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in out.parent.iterdir()] == ["seclab_certs.prom"]  # no temp file left


def test_output_is_valid_exposition_format(tmp_path: Path) -> None:
    make_cert(tmp_path / 'we"ird.crt', "x", dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    text = cert_textfile.render(*cert_textfile.collect([tmp_path]))
    assert 'name="we\\"ird"' in text
    res = subprocess.run(
        [tool("promtool"), "check", "metrics"], input=text, check=False, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr
