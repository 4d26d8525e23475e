"""NACM rules configured under /nacm (RFC 8341) take effect. Run against a
server of its own by tests/tests/netconf_nacm.rs (the file name keeps it out
of the shared ncclient suite: its rules would change what other tests see)."""
import pathlib
import time

import pytest
from ncclient.operations.rpc import RPCError

from conftest import connect, BASE, ROOT

NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
PBX = "urn:besip:pbx"
SYS = "urn:besip:system"
# "s3cret"
HASH = "$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1"
NC = f'xmlns:nc="{BASE}"'


def cfg(body):
    return f"<config>{body}</config>"


def users():
    return "".join(
        f"<user><name>{n}</name><group>{g}</group><password-hash>{HASH}</password-hash></user>"
        for n, g in (("oper", "operator"), ("mon", "monitor"), ("mon2", "monitor")))


def pbx(body):
    return f'<pbx xmlns="{PBX}">{body}</pbx>'


def trunk(name="prov", host="192.0.2.1", op=None):
    attr = f' {NC} nc:operation="{op}"' if op else ""
    inner = f"<name>{name}</name>" + ("" if op == "delete" else f"<host>{host}</host>")
    return pbx(f"<trunk{attr}>{inner}</trunk>")


def display_name(value, number="100"):
    return pbx(f"<extension><number>{number}</number><display-name>{value}</display-name></extension>")


def rule(name, action, ops="*", module="*", path=None, rpc=None, notification=None):
    kind = ""
    if path:
        kind = f"<path>{path}</path>"
    if rpc:
        kind = f"<rpc-name>{rpc}</rpc-name>"
    if notification:
        kind = f"<notification-name>{notification}</notification-name>"
    return (f"<rule><name>{name}</name><module-name>{module}</module-name>{kind}"
            f"<access-operations>{ops}</access-operations><action>{action}</action></rule>")


def nacm(rule_lists, groups="", enable=None):
    en = "" if enable is None else f"<enable-nacm>{enable}</enable-nacm>"
    lists = "".join(
        f"<rule-list><name>{name}</name>{''.join(f'<group>{g}</group>' for g in grps)}{''.join(rules)}</rule-list>"
        for name, grps, rules in rule_lists)
    return f'<nacm xmlns="{NACM}">{en}<groups>{groups}</groups>{lists}</nacm>'


@pytest.fixture(scope="module")
def admin():
    m = connect()
    m.discard_changes()
    m.edit_config(target="candidate", config=cfg(
        f'<system xmlns="{SYS}">{users()}</system>'
        + pbx("<extension><number>100</number><display-name>Alice</display-name>"
              "<password>Ext-secret-100</password></extension>"
              "<trunk><name>prov</name><host>192.0.2.1</host></trunk>")))
    m.commit()
    yield m
    m.close_session()


@pytest.fixture
def nc(admin):
    """The admin session; /nacm is emptied after each test."""
    admin.discard_changes()
    yield admin
    admin.discard_changes()
    admin.edit_config(target="candidate", config=cfg(f'<nacm xmlns="{NACM}" {NC} nc:operation="remove"/>'))
    admin.commit()


def set_rules(nc, xml):
    nc.edit_config(target="candidate", config=cfg(xml))
    nc.commit()


def denied(call):
    with pytest.raises(RPCError) as e:
        call()
    assert e.value.tag == "access-denied", e.value
    return e.value


def counters(nc):
    """RFC 8341 /nacm counters (config false), as the admin reads them."""
    import re
    data = nc.get(filter=("subtree", f'<nacm xmlns="{NACM}"/>')).data_xml
    return {k: int(re.search(f"<{k}>(\\d+)</{k}>", data).group(1))
            for k in ("denied-operations", "denied-data-writes", "denied-notifications")}


def running(m, subtree=None):
    if subtree:
        return m.get_config("running", filter=("subtree", subtree)).data_xml
    return m.get_config("running").data_xml


def test_deny_rule_blocks_trunks_not_extensions(nc):
    set_rules(nc, nacm([("ops", ["operator"], [
        rule("no-trunks", "deny", "create update delete", "besip-pbx", path="/besip-pbx:pbx/trunk")])]))
    before = counters(nc)
    oper = connect("oper", "s3cret")
    oper.edit_config(target="candidate", config=cfg(display_name("Alice Oper")))
    oper.commit()
    assert "Alice Oper" in running(nc)
    e = denied(lambda: oper.edit_config(target="candidate", config=cfg(trunk(host="192.0.2.7"))))
    assert e.type == "application" and "trunk" in (e.path or ""), e
    denied(lambda: oper.edit_config(target="candidate", config=cfg(trunk("new", "192.0.2.8"))))
    denied(lambda: oper.edit_config(target="candidate", config=cfg(trunk(op="delete"))))
    assert counters(nc)["denied-data-writes"] == before["denied-data-writes"] + 3
    # Nothing of the refused edits reached the candidate.
    assert not oper.get_config("candidate", filter=("subtree", pbx("<trunk/>"))).data_xml.count("192.0.2.7")
    # The rule is for operators: the admin still edits trunks.
    nc.edit_config(target="candidate", config=cfg(trunk(host="192.0.2.2")))
    nc.commit()
    assert "192.0.2.2" in running(nc)
    # A rollback to the old trunk is a trunk update too: refused, candidate kept.
    denied(lambda: oper.dispatch(rollback_element(f'<rollback xmlns="{SYS}"><back>1</back></rollback>')))
    assert "192.0.2.2" in oper.get_config("candidate", filter=("subtree", pbx("<trunk/>"))).data_xml
    oper.lock("candidate")  # refused if the candidate held changes
    oper.unlock("candidate")
    oper.close_session()


def test_permit_rule_lets_monitor_change_display_name_only(nc):
    set_rules(nc, nacm([("mon-dn", ["monitor"], [
        rule("commit", "permit", "exec", "ietf-netconf", rpc="commit"),
        rule("discard", "permit", "exec", "ietf-netconf", rpc="discard-changes"),
        rule("dn", "permit", "create update", "besip-pbx", path="/besip-pbx:pbx/extension/display-name")])]))
    mon = connect("mon", "s3cret")
    mon.edit_config(target="candidate", config=cfg(display_name("By Monitor")))
    mon.commit()
    assert "By Monitor" in running(nc)
    denied(lambda: mon.edit_config(target="candidate", config=cfg(
        pbx("<extension><number>100</number><enabled>false</enabled></extension>"))))
    denied(lambda: mon.edit_config(target="candidate", config=cfg(
        f'<system xmlns="{SYS}"><hostname>bymon</hostname></system>')))
    denied(lambda: mon.edit_config(target="candidate", config=cfg(display_name("X", number="555"))))
    mon.discard_changes()
    # mon2 is a monitor too: the rule-list is for the group, not the user.
    mon2 = connect("mon2", "s3cret")
    mon2.edit_config(target="candidate", config=cfg(display_name("By Mon2")))
    mon2.discard_changes()
    mon2.close_session()
    mon.close_session()


def test_deny_rpc_rule_blocks_commit_and_module_rpc(nc):
    set_rules(nc, nacm([("no-commit", ["operator"], [
        rule("commit", "deny", "exec", "ietf-netconf", rpc="commit"),
        rule("rollback", "deny", "exec", "besip-system", rpc="rollback")])]))
    oper = connect("oper", "s3cret")
    oper.edit_config(target="candidate", config=cfg(display_name("Uncommitted")))
    before = counters(nc)
    e = denied(oper.commit)
    assert e.type == "protocol", e
    assert counters(nc)["denied-operations"] == before["denied-operations"] + 1
    rollback = f'<rollback xmlns="{SYS}"><back>0</back></rollback>'
    denied(lambda: oper.dispatch(rollback_element(rollback)))
    oper.discard_changes()
    assert "Uncommitted" not in running(nc)
    # Other groups are not affected.
    nc.dispatch(rollback_element(rollback))
    nc.discard_changes()
    oper.close_session()


def rollback_element(xml):
    from ncclient.xml_ import to_ele
    return to_ele(xml)


def test_read_deny_rule_hides_trunks(nc):
    set_rules(nc, nacm([("hide", ["monitor"], [
        rule("hide-trunks", "deny", "read", "besip-pbx", path="/besip-pbx:pbx/trunk")])]))
    mon = connect("mon", "s3cret")
    for reply in (running(mon), running(mon, pbx("")), mon.get().data_xml,
                  mon.get(filter=("subtree", pbx("<trunk/><extension/>"))).data_xml):
        assert "<trunk>" not in reply and "192.0.2" not in reply, reply
        assert "<number>100</number>" in reply, reply
    # Secrets stay hidden from the monitor (default-deny-all, no rule permits).
    assert "Ext-secret-100" not in running(mon)
    assert "<trunk>" in running(nc) and "Ext-secret-100" in running(nc)
    oper = connect("oper", "s3cret")
    assert "<trunk>" in running(oper)
    oper.close_session()
    mon.close_session()


def test_read_rules_apply_to_an_export_to_a_file(nc):
    """copy-config to a file URL gives what get-config would (RFC 8341 §3.4.5)."""
    files = pathlib.Path(ROOT) / "var/lib/besip/files"
    files.mkdir(parents=True, exist_ok=True)
    export = files / "export.xml"
    nc.copy_config(source="running", target=f"file://{export}")
    assert "<trunk>" in export.read_text()
    set_rules(nc, nacm([("hide", ["admin"], [
        rule("hide-trunks", "deny", "read", "besip-pbx", path="/besip-pbx:pbx/trunk")])]))
    assert "<trunk>" not in running(nc)
    nc.copy_config(source="running", target=f"file://{export}")
    text = export.read_text()
    assert "<trunk>" not in text and "192.0.2.1" not in text, text
    assert "<number>100</number>" in text, text


def test_notification_rule_keeps_config_change_from_a_group(nc):
    set_rules(nc, nacm([("quiet", ["quiet"], [
        rule("no-cc", "deny", "read", "ietf-netconf-notifications", notification="netconf-config-change"),
        rule("no-bans", "deny", "read", "besip-security", notification="*")])],
        groups="<group><name>quiet</name><user-name>mon</user-name></group>"))
    mon, oper = connect("mon", "s3cret"), connect("oper", "s3cret")
    mon.create_subscription()
    oper.create_subscription()
    nc.edit_config(target="candidate", config=cfg(display_name("Notify")))
    nc.commit()
    n = oper.take_notification(timeout=10)
    assert n is not None and "netconf-config-change" in n.notification_xml
    assert mon.take_notification(timeout=2) is None
    assert counters(nc)["denied-notifications"] >= 1
    mon.close_session()
    oper.close_session()


def test_enable_nacm_false_falls_back_to_builtin_groups(nc):
    set_rules(nc, nacm([("ops", ["operator", "monitor"], [
        rule("no-trunks", "deny", "*", "besip-pbx", path="/besip-pbx:pbx/trunk"),
        rule("all", "permit", "*")])], enable="false"))
    oper = connect("oper", "s3cret")
    oper.edit_config(target="candidate", config=cfg(trunk(host="192.0.2.5")))
    assert "<trunk>" in running(oper)
    oper.discard_changes()
    mon = connect("mon", "s3cret")
    denied(lambda: mon.edit_config(target="candidate", config=cfg(display_name("no"))))
    denied(mon.commit)
    mon.close_session()
    oper.close_session()


def test_admin_lock_out_guard(nc):
    set_rules(nc, nacm([("lock-out", ["admin"], [rule("nothing", "deny", "*")])]))
    # Rules bind the admin elsewhere ...
    assert "<trunk>" not in running(nc)
    denied(lambda: nc.dispatch(rollback_element(f'<rollback xmlns="{SYS}"><back>0</back></rollback>')))
    denied(lambda: nc.edit_config(target="candidate", config=cfg(display_name("no"))))
    # ... but /nacm and /system/user stay readable and writable.
    data = running(nc)
    assert "lock-out" in data and "<name>oper</name>" in data and "$6$" in data
    nc.edit_config(target="candidate", config=cfg(
        f'<system xmlns="{SYS}"><user><name>oper</name><full-name>Still editable</full-name></user></system>'))
    nc.commit()
    assert "Still editable" in running(nc)
    # The fixture removes /nacm as admin: that is the recovery.


def test_bad_rule_path_is_refused_or_harmless(nc):
    for bad in ("/besip-pbx:pbx/trunk[", "not a path", "/nope:x"):
        with pytest.raises(RPCError) as e:
            nc.edit_config(target="candidate", config=cfg(nacm([("bad", ["operator"], [
                rule("bad", "deny", "*", path=bad)])])))
        assert e.value.tag in ("invalid-value", "bad-element"), e.value
        assert "node-instance-identifier" in str(e.value) or "path" in str(e.value), e.value
    nc.discard_changes()
    # A valid path that selects nothing is stored and evaluated harmlessly.
    set_rules(nc, nacm([("odd", ["operator"], [
        rule("odd", "deny", "*", "besip-pbx", path="/besip-pbx:pbx/trunk[name='none']")])]))
    oper = connect("oper", "s3cret")
    oper.edit_config(target="candidate", config=cfg(trunk(host="192.0.2.6")))
    assert "192.0.2.6" in oper.get_config("candidate").data_xml
    oper.discard_changes()
    oper.close_session()


def test_rule_path_with_xml_prefixes_round_trips(nc):
    xml_rule = ('<rule><name>no-trunks</name><module-name>besip-pbx</module-name>'
                f'<path xmlns:p="{PBX}">/p:pbx/p:trunk[p:name=\'prov\']</path>'
                '<access-operations>update</access-operations><action>deny</action></rule>')
    set_rules(nc, f'<nacm xmlns="{NACM}"><rule-list><name>x</name><group>operator</group>{xml_rule}</rule-list></nacm>')
    oper = connect("oper", "s3cret")
    denied(lambda: oper.edit_config(target="candidate", config=cfg(trunk(host="192.0.2.9"))))
    oper.close_session()
    # What get-config shows can be sent back as it is.
    data = nc.get_config("running", filter=("subtree", f'<nacm xmlns="{NACM}"/>')).data_xml
    start, end = data.index("<nacm"), data.index("</nacm>") + len("</nacm>")
    nc.edit_config(target="candidate", config=cfg(data[start:end]))
    nc.validate(source="candidate")
    nc.discard_changes()
