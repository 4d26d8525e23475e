"""Fixtures for the ncclient suite. The Rust test tests/tests/netconf_clients.rs
starts besip-netconfd and passes its port, admin password and root here."""
import os
import time

import paramiko
import pytest
import ncclient.transport.ssh
from ncclient import manager

# ncclient waits up to TICK (0.1 s) before sending a queued request; poll
# faster so the suite is not dominated by client idle time.
ncclient.transport.ssh.TICK = 0.005

PORT = int(os.environ.get("BESIP_NC_PORT", "830"))
PASSWORD = os.environ.get("BESIP_NC_PASSWORD", "")
ROOT = os.environ.get("BESIP_NC_ROOT", "/")
BASE = "urn:ietf:params:xml:ns:netconf:base:1.0"
SYS = "urn:besip:system"


def connect(user="admin", password=None, **kw):
    return manager.connect(host="127.0.0.1", port=PORT, username=user,
                           password=PASSWORD if password is None else password,
                           hostkey_verify=False, allow_agent=False,
                           look_for_keys=False, timeout=30, **kw)


@pytest.fixture
def nc():
    m = connect()
    # Every test starts from a clean candidate.
    m.discard_changes()
    yield m
    if m.connected:
        m.discard_changes()
        m.close_session()


class Raw:
    """A NETCONF session by hand (paramiko), for framing and bad-input tests."""

    def __init__(self, base11=False):
        self.client = paramiko.SSHClient()
        self.client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        self.client.connect("127.0.0.1", port=PORT, username="admin", password=PASSWORD,
                            allow_agent=False, look_for_keys=False, timeout=30)
        self.chan = self.client.get_transport().open_session()
        self.chan.settimeout(30)
        self.chan.invoke_subsystem("netconf")
        self.chunked = False
        self.buf = b""
        self.hello = self.read_eom()
        caps = "<capability>urn:ietf:params:netconf:base:1.0</capability>"
        if base11:
            caps += "<capability>urn:ietf:params:netconf:base:1.1</capability>"
        self.chan.sendall(f'<hello xmlns="{BASE}"><capabilities>{caps}</capabilities></hello>]]>]]>'.encode())
        self.chunked = base11

    def read_eom(self):
        while b"]]>]]>" not in self.buf:
            data = self.chan.recv(65536)
            if not data:
                raise EOFError(self.buf)
            self.buf += data
        msg, _, self.buf = self.buf.partition(b"]]>]]>")
        return msg.decode()

    def read_chunked(self):
        out = b""
        while True:
            while b"\n" not in self.buf[1:] :
                data = self.chan.recv(65536)
                if not data:
                    raise EOFError(self.buf)
                self.buf += data
            assert self.buf.startswith(b"\n#"), self.buf[:20]
            header, _, rest = self.buf[2:].partition(b"\n")
            if header == b"#":
                self.buf = rest
                return out.decode()
            size = int(header)
            while len(rest) < size:
                data = self.chan.recv(65536)
                if not data:
                    raise EOFError(rest)
                rest += data
            out += rest[:size]
            self.buf = rest[size:]

    def send_raw(self, payload: bytes):
        self.chan.sendall(payload)

    def rpc(self, body, mid="1"):
        msg = f'<rpc xmlns="{BASE}" message-id="{mid}">{body}</rpc>'
        return self.send(msg)

    def send(self, msg):
        data = msg.encode()
        if self.chunked:
            self.chan.sendall(b"\n#%d\n" % len(data) + data + b"\n##\n")
            return self.read_chunked()
        self.chan.sendall(data + b"]]>]]>")
        return self.read_eom()

    def closed(self, wait=10):
        deadline = time.time() + wait
        while time.time() < deadline:
            if self.chan.closed or self.chan.exit_status_ready() or self.chan.eof_received:
                return True
            time.sleep(0.1)
        return False

    def close(self):
        self.client.close()


@pytest.fixture
def raw():
    r = Raw()
    yield r
    r.close()


def user_xml(name, group="operator", extra="", op=None):
    attr = f' xmlns:nc="{BASE}" nc:operation="{op}"' if op else ""
    return (f'<config><system xmlns="{SYS}"><user{attr}><name>{name}</name>'
            f'<group>{group}</group>{extra}</user></system></config>')
