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


def utc_now():
    from datetime import datetime, timezone
    return datetime.now(timezone.utc)


def drain(listener, wait=5):
    """Notifications until none arrives for `wait` seconds (or a completion marker)."""
    out = []
    while True:
        n = listener.take_notification(timeout=wait)
        if n is None:
            return out
        out.append(n.notification_xml)
        if "notificationComplete" in out[-1]:
            return out


def test_notification_replay_filter_and_stop_time(nc):
    start = utc_now().isoformat()
    nc.edit_config(target="candidate", config=user_xml("replayed", "monitor"))
    nc.commit()
    time.sleep(0.2)
    between = utc_now().isoformat()
    time.sleep(0.2)
    nc.edit_config(target="candidate", config=user_xml("replayed", op="delete"))
    nc.commit()

    # Replay from before both commits: both changes, in order, then replayComplete.
    everything = connect()
    everything.create_subscription(start_time=start)
    got = drain(everything, wait=2)
    changes = [x for x in got if "netconf-config-change" in x]
    assert len(changes) == 2, got
    assert "<operation>merge</operation>" in changes[0] or "create" in changes[0], changes[0]
    assert "delete" in changes[1], changes[1]
    assert "replayComplete" in got[-1], got
    # Still subscribed: a new change arrives live, once.
    nc.edit_config(target="candidate", config=HOST.format("replay-live"))
    nc.commit()
    live = everything.take_notification(timeout=10)
    assert live is not None and "netconf-config-change" in live.notification_xml
    assert everything.take_notification(timeout=1) is None
    everything.close_session()

    # A window that ends between the commits: the first change only, then both markers.
    window = connect()
    window.create_subscription(start_time=start, stop_time=between)
    got = drain(window, wait=5)
    assert sum("netconf-config-change" in x for x in got) == 1, got
    assert "replayComplete" in got[-2] and "notificationComplete" in got[-1], got
    window.close_session()

    # A subtree filter that selects nothing of a config change: only the marker.
    banned = connect()
    banned.create_subscription(start_time=start, filter=("subtree", '<ban-added xmlns="urn:besip:security"/>'))
    got = drain(banned, wait=2)
    assert len(got) == 1 and "replayComplete" in got[0], got
    banned.close_session()
    # One that selects by content: the admin's changes.
    by_admin = connect()
    by_admin.create_subscription(start_time=start, filter=("subtree", (
        '<netconf-config-change xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-notifications">'
        '<changed-by><username>admin</username></changed-by></netconf-config-change>')))
    got = drain(by_admin, wait=2)
    assert sum("netconf-config-change" in x for x in got) == 3, got
    by_admin.close_session()
    nc.edit_config(target="candidate", config=HOST.format("besip"))
    nc.commit()


def test_subscription_parameters_are_checked(nc):
    from datetime import timedelta
    m = connect()
    future = (utc_now() + timedelta(hours=1)).isoformat()
    for kwargs, tag in ((dict(start_time=future), "bad-element"),
                        (dict(start_time=utc_now().isoformat(),
                              stop_time=(utc_now() - timedelta(hours=1)).isoformat()), "bad-element"),
                        (dict(start_time="yesterday"), "bad-element"),
                        (dict(filter=("xpath", "/x")), "operation-not-supported")):
        with pytest.raises(RPCError) as e:
            m.create_subscription(**kwargs)
        assert e.value.tag == tag, (kwargs, e.value)
    # None of them subscribed the session: a plain subscription still works.
    m.create_subscription()
    m.close_session()


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
