"""Secrets stay secret and admin data stays the admin's (issue 13 item 2),
file:// URLs stay in their directory (item 4). Run against a server of its
own by tests/tests/netconf_secrets.rs: the users and rules configured here
would change what the shared suite sees."""
import os

import pytest
from ncclient.operations.rpc import RPCError
from ncclient.xml_ import to_ele

from conftest import connect, BASE, ROOT

NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
PBX = "urn:besip:pbx"
SYS = "urn:besip:system"
# "s3cret"
HASH = "$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1"
NC = f'xmlns:nc="{BASE}"'
EXT_SECRET = "Ext-secret-100"
TRUNK_SECRET = "Trunk-secret-9"
FILES = os.path.join(ROOT, "var/lib/besip/files")


def cfg(body):
    return f"<config>{body}</config>"


def users():
    return "".join(
        f"<user><name>{n}</name><group>{g}</group><password-hash>{HASH}</password-hash></user>"
        for n, g in (("oper", "operator"), ("mon", "monitor"), ("ruled", "operator")))


def pbx(body):
    return f'<pbx xmlns="{PBX}">{body}</pbx>'


@pytest.fixture(scope="module")
def admin():
    m = connect()
    m.discard_changes()
    m.edit_config(target="candidate", config=cfg(
        f'<system xmlns="{SYS}">{users()}</system>'
        + pbx(f"<extension><number>100</number><display-name>Alice</display-name>"
              f"<password>{EXT_SECRET}</password></extension>"
              f"<trunk><name>prov</name><host>192.0.2.1</host><username>box</username>"
              f"<password>{TRUNK_SECRET}</password></trunk>")
        # 'ruled' has NACM rules (so reads go through the rule pruner) that
        # also deny it the display names.
        + f'<nacm xmlns="{NACM}"><groups><group><name>ruled</name><user-name>ruled</user-name>'
          f'</group></groups><rule-list><name>r</name><group>ruled</group>'
          f'<rule><name>no-names</name><module-name>besip-pbx</module-name>'
          f'<path>/besip-pbx:pbx/extension/display-name</path><access-operations>read</access-operations>'
          f'<action>deny</action></rule></rule-list></nacm>'))
    m.commit()
    yield m
    m.close_session()


@pytest.fixture
def nc(admin):
    admin.discard_changes()
    yield admin
    admin.discard_changes()


def denied(call):
    with pytest.raises(RPCError) as e:
        call()
    assert e.value.tag == "access-denied", e.value
    return e.value


def running(m):
    return m.get_config("running").data_xml


def xpath_guess(m, xpath, op="get-config"):
    f = ("xpath", ({"p": PBX, "s": SYS}, xpath))
    if op == "get":
        return m.get(filter=f).data_xml
    return m.get_config("running", filter=f).data_xml


# Each probe: an XPath filter whose answer depends on a secret, with the right
# and a wrong guess.
PROBES = [
    ("/p:pbx/p:extension[starts-with(p:password, '{}')]", "Ext-", "Xyz-"),
    ("/p:pbx/p:extension[p:password='{}']", EXT_SECRET, "wrong"),
    ("/p:pbx/p:trunk[starts-with(p:password, '{}')]", "Trunk-", "Xyz-"),
    ("/s:system/s:user[s:name='oper'][starts-with(s:password-hash, '{}')]", "$6$salt", "$argon2"),
    # The secret in a predicate of another node (an absolute path).
    ("/p:pbx/p:extension[starts-with(/p:pbx/p:trunk/p:password, '{}')]/p:number", "Trunk-", "Xyz-"),
]


@pytest.mark.parametrize("op", ["get-config", "get"])
def test_xpath_on_a_secret_answers_the_same_for_right_and_wrong_guesses(nc, op):
    for user in ("oper", "mon", "ruled"):
        m = connect(user, "s3cret")
        for template, right, wrong in PROBES:
            yes = xpath_guess(m, template.format(right), op)
            no = xpath_guess(m, template.format(wrong), op)
            assert yes == no, (user, template, yes, no)
            assert EXT_SECRET not in yes and TRUNK_SECRET not in yes and HASH not in yes
        m.close_session()
    # The admin may read the secrets: the filter matches the right guess only.
    for template, right, wrong in PROBES:
        yes = xpath_guess(nc, template.format(right), op)
        no = xpath_guess(nc, template.format(wrong), op)
        assert yes != no, (template, yes)
    assert EXT_SECRET in xpath_guess(nc, PROBES[0][0].format("Ext-"), op)


def test_subtree_content_match_on_a_secret_answers_the_same(nc):
    def probe(m, guess):
        return m.get_config("running", filter=("subtree", pbx(
            f"<extension><password>{guess}</password><number/></extension>"))).data_xml
    for user in ("oper", "mon", "ruled"):
        m = connect(user, "s3cret")
        assert probe(m, EXT_SECRET) == probe(m, "wrong")
        assert "<number>100</number>" not in probe(m, EXT_SECRET)
        m.close_session()
    assert "<number>100</number>" in probe(nc, EXT_SECRET)
    assert "<number>100</number>" not in probe(nc, "wrong")


def test_a_rule_denied_value_is_not_probed_either(nc):
    m = connect("ruled", "s3cret")
    t = "/p:pbx/p:extension[starts-with(p:display-name, '{}')]"
    assert xpath_guess(m, t.format("Ali")) == xpath_guess(m, t.format("Bob"))
    assert "Alice" not in running(m) and "<number>100</number>" in running(m)
    m.close_session()


def users_of(m):
    return m.get_config("running", filter=("subtree", f'<system xmlns="{SYS}"><user><name/></user></system>')).data_xml


def candidate_users(m):
    return m.get_config("candidate", filter=("subtree", f'<system xmlns="{SYS}"><user><name/></user></system>')).data_xml


@pytest.mark.parametrize("edit", [
    (f'<system xmlns="{SYS}" {NC} nc:operation="delete"/>', None),
    (f'<system xmlns="{SYS}" {NC} nc:operation="remove"/>', None),
    (f'<system xmlns="{SYS}" {NC} nc:operation="replace"><hostname>taken</hostname></system>', None),
    (f'<system xmlns="{SYS}"><hostname>taken</hostname></system>', "replace"),
    (f'<system xmlns="{SYS}"><user {NC} nc:operation="delete"><name>admin</name></user></system>', None),
])
def test_operator_cannot_delete_or_replace_the_users(nc, edit):
    body, default_operation = edit
    before_running, before_candidate = users_of(nc), candidate_users(nc)
    assert "<name>admin</name>" in before_running
    # 'ruled' is an operator with NACM rules: the rules' built-in fallback guards it.
    for user in ("oper", "ruled"):
        oper = connect(user, "s3cret")
        kw = {"default_operation": default_operation} if default_operation else {}
        e = denied(lambda: oper.edit_config(target="candidate", config=cfg(body), **kw))
        assert e.type == "application", e
        assert candidate_users(nc) == before_candidate
        assert "taken" not in nc.get_config("candidate").data_xml
        # Whole-configuration copies replace the users too.
        denied(lambda: oper.dispatch(to_ele(
            f'<copy-config xmlns="{BASE}"><target><candidate/></target><source><config>'
            f'<system xmlns="{SYS}"><hostname>taken</hostname></system></config></source></copy-config>')))
        assert candidate_users(nc) == before_candidate and users_of(nc) == before_running
        # What does not touch the users still works for an operator.
        oper.edit_config(target="candidate", config=cfg(f'<system xmlns="{SYS}"><hostname>oper-set</hostname></system>'))
        assert "oper-set" in nc.get_config("candidate").data_xml
        oper.discard_changes()
        oper.close_session()


def test_operator_cannot_roll_back_to_another_user_list(nc):
    # Two commits: the first adds a user, the second (back=0) a hostname.
    nc.edit_config(target="candidate", config=cfg(
        f'<system xmlns="{SYS}"><user><name>temp</name><group>monitor</group></user></system>'))
    nc.commit()
    nc.edit_config(target="candidate", config=cfg(f'<system xmlns="{SYS}"><hostname>rb-host</hostname></system>'))
    nc.commit()
    before = candidate_users(nc)
    assert "temp" in before
    # back=2 is the configuration before 'temp' was added: refused, nothing changes.
    for user in ("ruled", "oper"):
        oper = connect(user, "s3cret")
        denied(lambda: oper.dispatch(to_ele(f'<rollback xmlns="{SYS}"><back>2</back></rollback>')))
        assert candidate_users(nc) == before
        assert "rb-host" in nc.get_config("candidate").data_xml
        if user == "ruled":
            oper.close_session()
    # back=1 has the same users: allowed.
    oper.dispatch(to_ele(f'<rollback xmlns="{SYS}"><back>1</back></rollback>'))
    assert "rb-host" not in nc.get_config("candidate").data_xml
    assert candidate_users(nc) == before
    oper.discard_changes()
    oper.close_session()
    # The admin may.
    nc.dispatch(to_ele(f'<rollback xmlns="{SYS}"><back>2</back></rollback>'))
    assert "temp" not in candidate_users(nc)
    nc.discard_changes()
    nc.edit_config(target="candidate", config=cfg(
        f'<system xmlns="{SYS}"><user {NC} nc:operation="delete"><name>temp</name></user></system>'))
    nc.commit()


def close_quietly(m):
    try:
        m.close_session()
    except Exception:
        pass


def test_operator_cannot_kill_an_admin_session(nc):
    ruled = connect("ruled", "s3cret")
    denied(lambda: ruled.kill_session(nc.session_id))
    ruled.close_session()
    oper, other = connect("oper", "s3cret"), connect("oper", "s3cret")
    denied(lambda: oper.kill_session(nc.session_id))
    assert "<name>admin</name>" in users_of(nc)  # the admin's session lives
    oper.kill_session(other.session_id)  # another operator's it may end
    nc.kill_session(oper.session_id)  # and an admin any
    close_quietly(other)
    close_quietly(oper)


def test_monitor_cannot_lock(nc):
    mon = connect("mon", "s3cret")
    for store in ("running", "candidate"):
        e = denied(lambda: mon.lock(store))
        assert e.type == "protocol", e
    # Nothing is locked: the admin locks both.
    nc.lock("running")
    nc.lock("candidate")
    nc.unlock("candidate")
    nc.unlock("running")
    mon.close_session()


def rpc_error(call):
    with pytest.raises(RPCError) as e:
        call()
    return e.value


def test_file_urls_stay_in_the_files_directory(nc, tmp_path):
    os.makedirs(FILES, exist_ok=True)
    inside = os.path.join(FILES, "box.xml")
    nc.copy_config(source="running", target=f"file://{inside}")
    assert os.stat(inside).st_mode & 0o777 == 0o600
    assert EXT_SECRET in open(inside).read()
    outside = tmp_path / "out.xml"
    secret = tmp_path / "secret.xml"
    secret.write_text(cfg(f'<system xmlns="{SYS}"><hostname>from-outside</hostname></system>'))
    os.symlink(str(secret), os.path.join(FILES, "link.xml"))
    os.symlink(str(tmp_path), os.path.join(FILES, "up"))
    refused = [
        f"file://{outside}",
        f"file://{FILES}/../out.xml",
        f"file://{FILES}/up/out.xml",
        f"file://{FILES}/link.xml",
        f"file://{FILES}/up/secret.xml",
        f"file://{FILES}/../../../../../../../../etc/passwd",
    ]
    for url in refused:
        e = rpc_error(lambda: nc.copy_config(source="running", target=url))
        assert e.tag == "invalid-value", (url, e)
        e = rpc_error(lambda: nc.copy_config(source=url, target="candidate"))
        assert e.tag == "invalid-value", (url, e)
        e = rpc_error(lambda: nc.dispatch(to_ele(
            f'<edit-config xmlns="{BASE}"><target><candidate/></target><url>{url}</url></edit-config>')))
        assert e.tag == "invalid-value", (url, e)
        e = rpc_error(lambda: nc.delete_config(target=url))
        assert e.tag == "invalid-value", (url, e)
        assert "files" in e.message or "outside" in e.message, e.message
    # Nothing was written, read or deleted outside.
    assert not outside.exists() and secret.exists()
    assert os.path.islink(os.path.join(FILES, "link.xml"))
    assert "from-outside" not in nc.get_config("candidate").data_xml
    # Inside, all three work.
    nc.dispatch(to_ele(f'<edit-config xmlns="{BASE}"><target><candidate/></target><url>file://{inside}</url></edit-config>'))
    nc.copy_config(source=f"file://{inside}", target="candidate")
    nc.delete_config(target=f"file://{inside}")
    assert not os.path.exists(inside)


def test_the_files_directory_is_configurable(nc):
    other = os.path.join(ROOT, "var/lib/besip/other")
    netconf = f'<system xmlns="{SYS}"><netconf><files-directory>/var/lib/besip/other</files-directory></netconf></system>'
    nc.edit_config(target="candidate", config=cfg(netconf))
    nc.commit()
    try:
        # Takes effect at once; the directory is created on first use.
        nc.copy_config(source="running", target=f"file://{other}/box.xml")
        assert os.path.exists(os.path.join(other, "box.xml"))
        e = rpc_error(lambda: nc.copy_config(source="running", target=f"file://{FILES}/box.xml"))
        assert e.tag == "invalid-value" and "other" in e.message, e
        assert not os.path.exists(os.path.join(FILES, "box.xml"))
    finally:
        nc.edit_config(target="candidate", config=cfg(
            f'<system xmlns="{SYS}"><netconf><files-directory {NC} nc:operation="remove"/></netconf></system>'))
        nc.commit()
    nc.copy_config(source="running", target=f"file://{FILES}/box.xml")
    nc.delete_config(target=f"file://{FILES}/box.xml")
