"""get, get-config (subtree/xpath), edit-config operations and options,
validate, commit, discard-changes, copy-config/delete-config with URLs,
get-schema, /netconf-state, /modules-state, with-defaults."""
import os
import pathlib
import pytest
from ncclient.operations.rpc import RPCError
from ncclient.xml_ import to_ele
from conftest import BASE, ROOT, SYS, Raw, user_xml, connect

SUB_USER = '<system xmlns="urn:besip:system"><user><name>{}</name></user></system>'


def running_users(nc):
    return nc.get_config("running", filter=("xpath", "/system/user/name")).data_xml


def test_create_merge_replace_delete_remove(nc):
    nc.edit_config(target="candidate", config=user_xml("u1", "operator", op="create"))
    with pytest.raises(RPCError) as e:
        nc.edit_config(target="candidate", config=user_xml("u1", op="create"))
    assert e.value.tag == "data-exists"
    nc.edit_config(target="candidate", config=user_xml("u1", "monitor", "<full-name>One</full-name>"))
    cand = nc.get_config("candidate", filter=("subtree", SUB_USER.format("u1"))).data_xml
    assert "<group>monitor</group>" in cand and "One" in cand
    nc.edit_config(target="candidate", config=user_xml("u1", "admin", op="replace"))
    cand = nc.get_config("candidate", filter=("subtree", SUB_USER.format("u1"))).data_xml
    assert "One" not in cand and "<group>admin</group>" in cand
    assert "u1" not in running_users(nc)
    nc.commit()
    assert "u1" in running_users(nc)
    nc.edit_config(target="candidate", config=user_xml("u1", op="delete"))
    with pytest.raises(RPCError) as e:
        nc.edit_config(target="candidate", config=user_xml("u1", op="delete"))
    assert e.value.tag == "data-missing"
    nc.edit_config(target="candidate", config=user_xml("u1", op="remove"))
    nc.commit()
    assert "u1" not in running_users(nc)


def test_default_operation_and_test_only(nc):
    nc.edit_config(target="candidate", config=user_xml("u2"), test_option="test-only")
    assert "<name>u2</name>" not in nc.get_config("candidate").data_xml
    # default-operation none: a leaf without an operation changes nothing.
    nc.edit_config(target="candidate", default_operation="none",
                   config='<config><system xmlns="urn:besip:system"><hostname>nochange</hostname></system></config>')
    assert "nochange" not in nc.get_config("candidate").data_xml


def test_rollback_on_error_keeps_nothing(nc):
    bad = ('<config><system xmlns="urn:besip:system"><user><name>u3</name></user>'
           '<user><name>u4</name><group>superuser</group></user></system></config>')
    with pytest.raises(RPCError) as e:
        nc.edit_config(target="candidate", config=bad, error_option="rollback-on-error")
    assert e.value.tag == "invalid-value"
    cand = nc.get_config("candidate").data_xml
    # Element matches: random password hashes may contain any short string.
    assert "<name>u3</name>" not in cand and "<name>u4</name>" not in cand


def test_validate_commit_discard(nc):
    nc.edit_config(target="candidate", config='<config><system xmlns="urn:besip:system"><hostname>valbox</hostname></system></config>')
    nc.validate(source="candidate")
    nc.discard_changes()
    assert "valbox" not in nc.get_config("candidate").data_xml
    # A cross-field rule (must) is checked at validate/commit.
    clash = ('<config><system xmlns="urn:besip:system"><netconf><port>8080</port></netconf>'
             '<web><port>8080</port></web></system></config>')
    nc.edit_config(target="candidate", config=clash)
    with pytest.raises(RPCError):
        nc.validate(source="candidate")
    with pytest.raises(RPCError):
        nc.commit()
    assert "8080" not in nc.get_config("running").data_xml
    nc.discard_changes()
    # validate of an inline <config>: a good one and one breaking a must rule.
    r = Raw()
    ok = r.rpc('<validate><source><config><system xmlns="urn:besip:system"><hostname>ok</hostname></system></config></source></validate>')
    assert "<ok/>" in ok
    bad = r.rpc('<validate><source><config><system xmlns="urn:besip:system"><netconf><port>8080</port></netconf><web><port>8080</port></web></system></config></source></validate>')
    assert "<rpc-error>" in bad
    r.close()


def test_filters(nc):
    nc.edit_config(target="candidate", config=user_xml("f1", "monitor"))
    nc.edit_config(target="candidate", config=user_xml("f2", "operator"))
    nc.commit()
    sub = nc.get_config("running", filter=("subtree", SUB_USER.format("f1"))).data_xml
    assert "<name>f1</name>" in sub and "<name>f2</name>" not in sub and "<hostname>" not in sub
    xp = nc.get_config("running", filter=("xpath", "/system/user[group='operator']")).data_xml
    assert "<name>f2</name>" in xp and "<name>f1</name>" not in xp
    empty = nc.get_config("running", filter=("subtree", '<system xmlns="urn:besip:system"><user><name>nobody</name></user></system>')).data_xml
    assert "<user>" not in empty
    for n in ("f1", "f2"):
        nc.edit_config(target="candidate", config=user_xml(n, op="delete"))
    nc.commit()


def test_with_defaults(nc):
    filt = ("subtree", '<system xmlns="urn:besip:system"><netconf/></system>')
    explicit = nc.get_config("running", filter=filt).data_xml
    assert "<port>" not in explicit
    full = nc.get_config("running", filter=filt, with_defaults="report-all").data_xml
    assert "<port>830</port>" in full and "<max-sessions>64</max-sessions>" in full
    trim = nc.get_config("running", filter=filt, with_defaults="trim").data_xml
    assert "<port>830</port>" not in trim


def test_get_state(nc):
    data = nc.get(filter=("subtree", '<netconf-state xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"/>')).data_xml
    assert f"<session-id>{nc.session_id}</session-id>" in data
    assert "<identifier>besip-system</identifier>" in data
    assert "<in-rpcs>" in data and "<netconf-start-time>" in data
    lib = nc.get(filter=("subtree", '<modules-state xmlns="urn:ietf:params:xml:ns:yang:ietf-yang-library"/>')).data_xml
    assert "<module-set-id>" in lib and "<name>besip-system</name>" in lib
    lib11 = nc.get(filter=("subtree", '<yang-library xmlns="urn:ietf:params:xml:ns:yang:ietf-yang-library"/>')).data_xml
    assert "<content-id>" in lib11 and "<name>besip-system</name>" in lib11 and "<import-only-module>" in lib11
    everything = nc.get().data_xml
    assert "<hostname>" in everything and "<netconf-state" in everything
    hist = nc.get(filter=("subtree", '<commit-history xmlns="urn:besip:system"/>')).data_xml
    assert "<commit>" in hist


def test_get_schema(nc):
    text = nc.get_schema("besip-system").data
    assert "module besip-system" in text and "container system" in text
    assert "module ietf-netconf-acm" in nc.get_schema("ietf-netconf-acm").data
    with pytest.raises(RPCError) as e:
        nc.get_schema("no-such-module")
    assert e.value.tag == "invalid-value"


def test_copy_and_delete_config_url(nc):
    # file:// URLs name files in besip-system netconf/files-directory only.
    files = pathlib.Path(ROOT) / "var/lib/besip/files"
    files.mkdir(parents=True, exist_ok=True)
    export = files / "export.xml"
    nc.copy_config(source="running", target=f"file://{export}")
    text = export.read_text()
    assert "<hostname>" in text and "<config" in text
    text = text.replace("</system>", "<user><name>imported</name><group>monitor</group></user></system>")
    export.write_text(text)
    nc.copy_config(source=f"file://{export}", target="candidate")
    assert "imported" in nc.get_config("candidate").data_xml
    nc.commit()
    assert "imported" in running_users(nc)
    # inline <config> as the source replaces the candidate.
    current = nc.get_config("running").data_ele
    nc.edit_config(target="candidate", config=user_xml("imported", op="delete"))
    nc.commit()
    nc.delete_config(target=f"file://{export}")
    assert not export.exists()
    with pytest.raises(RPCError):
        nc.delete_config(target="running")


def test_copy_inline_config(nc):
    cfg = nc.get_config("running").data_xml
    start = cfg.index("<system")
    end = cfg.rindex("</system>") + len("</system>")
    system = cfg[start:end].replace("<hostname>", "<hostname>x").replace("</hostname>", "</hostname>", 1)
    nc.dispatch(to_ele(f'<copy-config xmlns="{BASE}"><target><candidate/></target><source><config>{system}</config></source></copy-config>'))
    assert "<hostname>x" in nc.get_config("candidate").data_xml
    nc.discard_changes()
