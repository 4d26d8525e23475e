"""Bad input: each gets the right rpc-error and changes nothing."""
import re
from conftest import BASE, Raw


def test_malformed_xml(raw):
    reply = raw.send("<rpc xmlns='urn:ietf:params:xml:ns:netconf:base:1.0' message-id='1'><get>")
    assert "<error-tag>malformed-message</error-tag>" in reply
    # The session survives.
    assert "<data>" in raw.rpc("<get-config><source><running/></source></get-config>")


def test_dtd_and_entities_refused(raw):
    bomb = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            f'<rpc xmlns="{BASE}" message-id="1"><get/></rpc>')
    reply = raw.send(bomb)
    assert "<error-tag>malformed-message</error-tag>" in reply
    reply = raw.rpc('<edit-config><target><candidate/></target><config><system xmlns="urn:besip:system"><hostname>&xxe;</hostname></system></config></edit-config>')
    assert "<error-tag>malformed-message</error-tag>" in reply
    # Nothing of the refused edit is in the candidate (hashes are left out:
    # random base64 may contain any short string).
    candidate = re.sub(r"<password-hash>[^<]*</password-hash>", "",
                       raw.rpc("<get-config><source><candidate/></source></get-config>"))
    assert "xxe" not in candidate


def test_unknown_element_has_error_path(raw):
    reply = raw.rpc('<edit-config><target><candidate/></target><config><system xmlns="urn:besip:system"><bogus>1</bogus></system></config></edit-config>')
    assert "<error-tag>unknown-element</error-tag>" in reply
    assert "<error-path" in reply and "system:system" in reply and 'xmlns:system="urn:besip:system"' in reply
    assert "<bad-element>bogus</bad-element>" in reply


def test_invalid_value(raw):
    reply = raw.rpc('<edit-config><target><candidate/></target><config><system xmlns="urn:besip:system"><netconf><port>99999</port></netconf></system></config></edit-config>')
    assert "<error-tag>invalid-value</error-tag>" in reply
    assert "99999" not in raw.rpc("<get-config><source><candidate/></source></get-config>")


def test_missing_message_id_and_unknown_operation(raw):
    reply = raw.send(f'<rpc xmlns="{BASE}"><get/></rpc>')
    assert "<error-tag>missing-attribute</error-tag>" in reply
    reply = raw.rpc("<frobnicate/>")
    assert "<error-tag>operation-not-supported</error-tag>" in reply
    reply = raw.rpc("<get-config><source><nowhere/></source></get-config>")
    assert "<rpc-error>" in reply


def test_oversize_message_closes_session_cleanly(raw):
    # The default limit is 16 MiB (besip-system netconf/max-message-size).
    chunk = b"<a>" + b"x" * (1 << 20) + b"</a>"
    try:
        for _ in range(18):
            raw.send_raw(chunk)
        reply = raw.read_eom()
        assert "<error-tag>too-big</error-tag>" in reply
    except (EOFError, OSError):
        pass
    assert raw.closed()
    # The server is still fine for others.
    other = Raw()
    assert "<data>" in other.rpc("<get-config><source><running/></source></get-config>")
    other.close()
