"""Locks between concurrent sessions, kill-session, confirmed commits,
notifications, NACM groups."""
import time
import pytest
from ncclient.operations.rpc import RPCError
from conftest import SYS, connect, user_xml

HOST = '<config><system xmlns="urn:besip:system"><hostname>{}</hostname></system></config>'


def hostname(m, source="running"):
    data = m.get_config(source, filter=("subtree", '<system xmlns="urn:besip:system"><hostname/></system>')).data_xml
    return data.split("<hostname>")[1].split("</hostname>")[0] if "<hostname>" in data else None


def test_lock_contention(nc):
    other = connect()
    nc.lock("candidate")
    with pytest.raises(RPCError) as e:
        other.lock("candidate")
    assert e.value.tag == "lock-denied"
    assert f"<session-id>{nc.session_id}</session-id>" in e.value.info
    with pytest.raises(RPCError) as e:
        other.edit_config(target="candidate", config=HOST.format("other"))
    assert e.value.tag == "in-use"
    nc.unlock("candidate")
    other.lock("candidate")
    other.unlock("candidate")
    nc.lock("running")
    other.close_session()
    nc.unlock("running")


def test_lock_released_when_session_ends(nc):
    other = connect()
    other.lock("running")
    other.close_session()
    nc.lock("running")
    nc.unlock("running")


def test_kill_session(nc):
    victim = connect()
    victim.lock("running")
    nc.kill_session(victim.session_id)
    time.sleep(0.5)
    with pytest.raises(Exception):
        victim.get_config("running")
    nc.lock("running")
    nc.unlock("running")
    with pytest.raises(RPCError):
        nc.kill_session(nc.session_id)


def test_confirmed_commit_reverts_without_confirm(nc):
    before = hostname(nc)
    nc.edit_config(target="candidate", config=HOST.format("tentative"))
    nc.commit(confirmed=True, timeout="2")
    committed = time.monotonic()
    assert hostname(nc) == "tentative"
    time.sleep(1)
    assert hostname(nc) == "tentative", "reverted before its timeout"
    time.sleep(max(0.0, committed + 3 - time.monotonic()))
    assert hostname(nc) == before


def test_confirmed_commit_confirmed_in_time(nc):
    nc.edit_config(target="candidate", config=HOST.format("confirmed"))
    nc.commit(confirmed=True, timeout="30")
    nc.commit()
    time.sleep(0.5)
    assert hostname(nc) == "confirmed"
    nc.edit_config(target="candidate", config=HOST.format("besip"))
    nc.commit()


def test_persist_and_cancel_commit(nc):
    before = hostname(nc)
    nc.edit_config(target="candidate", config=HOST.format("persisted"))
    nc.commit(confirmed=True, timeout="60", persist="tok1")
    nc.close_session()
    other = connect()
    # The persistent confirmed commit survived its session.
    assert hostname(other) == "persisted"
    with pytest.raises(RPCError):
        other.cancel_commit(persist_id="wrong")
    other.cancel_commit(persist_id="tok1")
    assert hostname(other) == before
    other.close_session()


def test_non_persistent_confirmed_commit_cancelled_with_session():
    a = connect()
    before = hostname(a)
    a.edit_config(target="candidate", config=HOST.format("sessionbound"))
    a.commit(confirmed=True, timeout="60")
    a.close_session()
    b = connect()
    time.sleep(0.5)
    assert hostname(b) == before
    b.close_session()


def test_notification_after_commit(nc):
    listener = connect()
    listener.create_subscription()
    nc.edit_config(target="candidate", config=user_xml("notified", "monitor"))
    nc.commit()
    n = listener.take_notification(timeout=10)
    assert n is not None
    assert "netconf-config-change" in n.notification_xml
    assert "<username>admin</username>" in n.notification_xml
    assert "notified" in n.notification_xml
    # interleave: the subscribed session still answers RPCs.
    assert "<hostname>" in listener.get_config("running").data_xml
    nc.edit_config(target="candidate", config=user_xml("notified", op="delete"))
    nc.commit()
    listener.close_session()


def test_nacm_groups(nc):
    nc.edit_config(target="candidate", config=(
        '<config><system xmlns="urn:besip:system">'
        '<user><name>oper</name><group>operator</group><password-hash>{}</password-hash></user>'
        '<user><name>mon</name><group>monitor</group><password-hash>{}</password-hash></user>'
        '</system></config>').format(
            "$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1",
            "$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1"))
    nc.commit()
    mon = connect("mon", "s3cret")
    assert "<hostname>" in mon.get_config("running").data_xml
    # Secrets (nacm:default-deny-all) are for admins only, in every read.
    for reader in (mon,):
        for reply in (reader.get_config("running"), reader.get(),
                      reader.get_config("running", filter=("subtree", '<system xmlns="urn:besip:system"><user/></system>'))):
            assert "password-hash" not in reply.data_xml and "$6$" not in reply.data_xml
        assert "<name>mon</name>" in reader.get_config("running").data_xml
    assert "password-hash" in nc.get_config("running").data_xml
    with pytest.raises(RPCError) as e:
        mon.edit_config(target="candidate", config=HOST.format("bymon"))
    assert e.value.tag == "access-denied"
    with pytest.raises(RPCError) as e:
        mon.commit()
    assert e.value.tag == "access-denied"
    mon.close_session()
    oper = connect("oper", "s3cret")
    assert "password-hash" not in oper.get_config("running").data_xml
    with pytest.raises(RPCError) as e:
        oper.edit_config(target="candidate", config=user_xml("sneaky", "admin"))
    assert e.value.tag == "access-denied"
    oper.edit_config(target="candidate", config=HOST.format("byoper"))
    oper.commit()
    assert hostname(nc) == "byoper"
    oper.edit_config(target="candidate", config=HOST.format("besip"))
    oper.commit()
    oper.close_session()
    for n in ("oper", "mon"):
        nc.edit_config(target="candidate", config=user_xml(n, op="delete"))
    nc.commit()


def test_persist_id_confirms_from_another_session(nc):
    nc.edit_config(target="candidate", config=HOST.format("persist2"))
    nc.commit(confirmed=True, timeout="60", persist="tok2")
    nc.close_session()
    other = connect()
    # A plain commit without the persist-id must not confirm it.
    with pytest.raises(RPCError):
        other.commit()
    other.commit(persist_id="tok2")
    time.sleep(0.5)
    assert hostname(other) == "persist2"
    with pytest.raises(RPCError):
        other.cancel_commit(persist_id="tok2")
    other.edit_config(target="candidate", config=HOST.format("besip"))
    other.commit()
    other.close_session()
