"""Hello, capabilities, framing, authentication."""
import paramiko
import pytest
from ncclient import manager
from conftest import BASE, PORT, PASSWORD, Raw, connect

REQUIRED = [
    "urn:ietf:params:netconf:base:1.0",
    "urn:ietf:params:netconf:base:1.1",
    "urn:ietf:params:netconf:capability:candidate:1.0",
    "urn:ietf:params:netconf:capability:confirmed-commit:1.1",
    "urn:ietf:params:netconf:capability:validate:1.1",
    "urn:ietf:params:netconf:capability:rollback-on-error:1.0",
    "urn:ietf:params:netconf:capability:xpath:1.0",
    "urn:ietf:params:netconf:capability:notification:1.0",
    "urn:ietf:params:netconf:capability:interleave:1.0",
]


def test_hello_capabilities(nc):
    caps = list(nc.server_capabilities)
    for cap in REQUIRED:
        assert cap in caps, cap
    assert any(c.startswith("urn:ietf:params:netconf:capability:with-defaults:1.0?basic-mode=explicit") and "report-all" in c and "trim" in c for c in caps)
    assert any(c.startswith("urn:ietf:params:netconf:capability:url:1.0") and "file" in c for c in caps)
    assert any(c.startswith("urn:ietf:params:netconf:capability:yang-library:1.0") and "module-set-id=" in c for c in caps)
    assert any(c.startswith("urn:ietf:params:netconf:capability:yang-library:1.1") for c in caps)
    for module in ["besip-system", "ietf-netconf-monitoring", "ietf-netconf-acm", "ietf-netconf-with-defaults"]:
        assert any(f"module={module}" in c for c in caps), module
    assert nc.session_id and int(nc.session_id) > 0


def test_eom_framing_base10():
    r = Raw(base11=False)
    assert "urn:ietf:params:netconf:base:1.1" in r.hello
    reply = r.rpc("<get-config><source><running/></source></get-config>", mid="42")
    assert 'message-id="42"' in reply and "<hostname>" in reply
    r.close()


def test_chunked_framing_base11():
    r = Raw(base11=True)
    reply = r.rpc("<get-config><source><running/></source></get-config>", mid="7")
    assert 'message-id="7"' in reply and "<data>" in reply
    # A message in several chunks.
    msg = f'<rpc xmlns="{BASE}" message-id="8"><get-config><source><candidate/></source></get-config></rpc>'.encode()
    r.send_raw(b"".join(b"\n#%d\n" % len(msg[i:i + 10]) + msg[i:i + 10] for i in range(0, len(msg), 10)) + b"\n##\n")
    reply = r.read_chunked()
    assert 'message-id="8"' in reply and "<data>" in reply
    r.close()


def test_wrong_password_is_refused():
    with pytest.raises(Exception):
        connect(password="not-the-password")
    with pytest.raises(Exception):
        connect(user="nobody", password=PASSWORD)


def test_publickey_login(nc, tmp_path):
    key = paramiko.RSAKey.generate(2048)
    path = tmp_path / "id_rsa"
    key.write_private_key_file(str(path))
    pub = f"ssh-rsa {key.get_base64()} test"
    nc.edit_config(target="candidate", config=(
        f'<config><system xmlns="urn:besip:system"><user><name>keyuser</name><group>monitor</group>'
        f'<ssh-key>{pub}</ssh-key></user></system></config>'))
    nc.commit()
    m = manager.connect(host="127.0.0.1", port=PORT, username="keyuser", key_filename=str(path),
                        hostkey_verify=False, allow_agent=False, look_for_keys=False, timeout=30)
    assert "<hostname>" in m.get_config("running").data_xml
    m.close_session()
    # A key not on file is refused.
    other = paramiko.RSAKey.generate(2048)
    other_path = tmp_path / "other"
    other.write_private_key_file(str(other_path))
    with pytest.raises(Exception):
        manager.connect(host="127.0.0.1", port=PORT, username="keyuser", key_filename=str(other_path),
                        hostkey_verify=False, allow_agent=False, look_for_keys=False, timeout=30)


def test_password_is_stored_hashed(nc):
    data = nc.get_config("running", filter=("subtree", '<system xmlns="urn:besip:system"><user><name>admin</name></user></system>')).data_xml
    assert "$argon2id$" in data
    assert PASSWORD not in data
