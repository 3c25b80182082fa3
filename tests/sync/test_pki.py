"""The embedded broker's CA and access files, without a broker: certificates, key modes, reuse,
the ``$7$`` password hash and the ACL's shape."""

from __future__ import annotations

import base64
import os
import shutil
import ssl
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from crown_edge.embedded import mosquitto_files as files
from crown_edge.embedded.pki import LocalCa, write_private


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ca_server_and_client_certificates_chain_and_keys_are_private(tmp_path: Path) -> None:
    ca = LocalCa(tmp_path / "pki")
    server = ca.server(("127.0.0.1", "localhost"))
    client = ca.client("crown-edge-demo")
    assert _mode(tmp_path / "pki") == 0o700
    for key in (ca.pair.key_file, server.key_file, client.key_file):
        assert _mode(key) == 0o600
    ca_cert = x509.load_pem_x509_certificate(ca.cert_file.read_bytes())
    leaf = x509.load_pem_x509_certificate(client.cert_file.read_bytes())
    leaf.verify_directly_issued_by(ca_cert)
    cn = leaf.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value
    assert cn == "crown-edge-demo"
    # the standard library accepts the chain and the key pair (what the clients do)
    ctx = ssl.create_default_context(cafile=str(ca.cert_file))
    ctx.load_cert_chain(client.cert_file, client.key_file)
    san = x509.load_pem_x509_certificate(server.cert_file.read_bytes()).extensions
    names = san.get_extension_for_class(x509.SubjectAlternativeName).value
    assert x509.DNSName("localhost") in names
    assert any(isinstance(n, x509.IPAddress) for n in names)


def test_everything_is_reused_until_the_ca_changes(tmp_path: Path) -> None:
    ca = LocalCa(tmp_path)
    client = ca.client("crown-cloud")
    before = (ca.cert_file.read_bytes(), client.cert_file.read_bytes())
    again = LocalCa(tmp_path)
    assert (again.cert_file.read_bytes(), again.client("crown-cloud").cert_file.read_bytes()) == (
        before
    )
    # a server certificate that does not name a newly asked-for host is issued again
    first = again.server(("127.0.0.1",)).cert_file.read_bytes()
    assert again.server(("127.0.0.1",)).cert_file.read_bytes() == first
    assert again.server(("127.0.0.1", "broker.local")).cert_file.read_bytes() != first
    # a new CA (the old key lost): every leaf is issued again by it
    ca.pair.key_file.unlink()
    fresh = LocalCa(tmp_path)
    assert fresh.cert_file.read_bytes() != before[0]
    reissued = fresh.client("crown-cloud")
    leaf = x509.load_pem_x509_certificate(reissued.cert_file.read_bytes())
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(fresh.cert_file.read_bytes()))


def test_identity_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bad identity"):
        LocalCa(tmp_path).client("../etc/passwd")


def test_write_private_is_0600_from_the_start_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    target.write_text("old")
    os.chmod(target, 0o644)
    write_private(target, b"new")
    assert target.read_bytes() == b"new" and _mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]


def test_password_hash_is_mosquittos_pbkdf2_sha512_format() -> None:
    line = files.password_hash("pw", salt=b"\x01" * 12)
    kind, iterations, salt, digest = line.split("$")[1:]
    assert (kind, iterations) == ("7", "101")
    assert base64.b64decode(salt) == b"\x01" * 12 and len(base64.b64decode(digest)) == 64
    assert files.password_hash("pw", salt=b"\x01" * 12) == line
    assert files.password_hash("pw2", salt=b"\x01" * 12) != line


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd missing")
def test_password_hash_matches_mosquitto_passwd(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(path), "alice", "wonder"], check=True)
    user, hashed = path.read_text().strip().split(":", 1)
    salt = base64.b64decode(hashed.split("$")[3])
    assert user == "alice"
    assert files.password_hash("wonder", salt=salt) == hashed


def test_password_file_has_one_line_per_user() -> None:
    text = files.password_file({"b": "x", "a": "y"}, salt=lambda n: b"\0" * n)
    assert [line.split(":")[0] for line in text.splitlines()] == ["a", "b"]


def test_acl_grants_each_workshop_its_own_topics_and_only_the_cloud_commands() -> None:
    acl = files.acl_file(["leeds", "york"])
    blocks = {b.splitlines()[0]: b.splitlines()[1:] for b in acl.split("\n\n")}
    cloud = acl.split("\n\n")[0].splitlines()  # a comment, then the cloud's grants
    assert cloud[1] == "user crown-cloud"
    assert "topic write crown/v1/+/commands/#" in cloud
    leeds = blocks["user crown-edge-leeds"]
    assert leeds == [
        "topic write crown/v1/leeds/edge/state",
        "topic write crown/v1/leeds/machines/+/state",
        "topic write crown/v1/leeds/events",
        "topic read crown/v1/leeds/commands/#",
        "topic read crown/v1/leeds/acks",
        "topic read crown/v1/leeds/replay",
    ]
    down = ("commands", "acks", "replay")
    writes = [line for line in acl.splitlines() if any(d in line for d in down) and "write" in line]
    assert writes == [
        "topic write crown/v1/+/commands/#",
        "topic write crown/v1/+/acks",
        "topic write crown/v1/+/replay",
    ]


@pytest.mark.parametrize("bad", ["a\nuser crown-cloud", "a/b", "+", "#", "", "x" * 65])
def test_acl_refuses_shop_ids_that_would_change_its_meaning(bad: str) -> None:
    with pytest.raises(ValueError):
        files.acl_file([bad])
