"""What the Python tests share: tokens, free ports, the suite's real binaries
started on free ports (each service on its own database, the gateway before
them), throwaway PostgreSQL databases, and a private PostgreSQL server a test
may stop and start."""

import base64
import contextlib
import glob
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import uuid

import grpc

from crm.contacts.v1 import contacts_pb2, contacts_pb2_grpc
from crm.sales.v1 import sales_pb2, sales_pb2_grpc
from crm.support.v1 import support_pb2, support_pb2_grpc

SECRET = "python-e2e-secret"
POSTGRES = ("127.0.0.1", 5432)


def token(tenant, roles, subject="py"):
    """An HS256 JWT, made with the standard library."""

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    now = int(time.time())
    claims = {"sub": subject, "tenant": tenant, "roles": roles, "iat": now, "exp": now + 3600}
    payload = b64(json.dumps(claims).encode())
    signature = hmac.new(SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Suite:
    """The gateway and `services` (contacts, sales, support) as real processes on free
    ports; SQLite files in a temporary folder unless a database URL is given;
    `env` adds to (or overrides) the processes' environment."""

    def __init__(
        self, services=("contacts", "sales", "support"), contacts_db=None, sales_db=None, support_db=None, env=None
    ):
        self.services = services
        self.folder = tempfile.TemporaryDirectory()
        self.ports = {name: free_port() for name in (*services, "gateway", "metrics")}
        urls = {
            "contacts": contacts_db or f"sqlite://{self.folder.name}/contacts.db?mode=rwc",
            "sales": sales_db or f"sqlite://{self.folder.name}/sales.db?mode=rwc",
            "support": support_db or f"sqlite://{self.folder.name}/support.db?mode=rwc",
        }
        self.env = dict(
            os.environ,
            CRM_GATEWAY__LISTEN_ADDR=f"127.0.0.1:{self.ports['gateway']}",
            CRM_GATEWAY__METRICS_ADDR=f"127.0.0.1:{self.ports['metrics']}",
            CRM_AUTH__HS256_SECRET=SECRET,
            CRM_AUTH__SERVICE_SECRET="python-e2e-service-secret",
            CRM_PAGING_SECRET="paging",
            RUST_LOG=os.environ.get("RUST_LOG", "warn"),
        )
        for name in services:
            upper = name.upper()
            self.env[f"CRM_{upper}__LISTEN_ADDR"] = f"127.0.0.1:{self.ports[name]}"
            self.env[f"CRM_{upper}__DATABASE_URL"] = urls[name]
            self.env[f"CRM_GATEWAY__UPSTREAMS__{upper}__ADDRESSES"] = f"http://127.0.0.1:{self.ports[name]}"
        if "contacts" in services:
            self.env["CRM_SALES__CONTACTS_URL"] = f"http://127.0.0.1:{self.ports['contacts']}"
            self.env["CRM_SUPPORT__CONTACTS_URL"] = f"http://127.0.0.1:{self.ports['contacts']}"
        self.env.update(env or {})
        self.processes = {}
        self.gateway_channel = None

    def start(self, name):
        """Starts (or starts again) one of the processes."""
        self.processes[name] = subprocess.Popen([os.environ[f"CRM_{name.upper()}_BIN"]], env=self.env)

    def kill(self, name):
        """SIGKILL: no drain, no cleanup, as a crash or an OOM kill."""
        self.processes[name].kill()
        self.processes[name].wait(timeout=30)

    def __enter__(self):
        self.processes = {}
        self.gateway_channel = grpc.insecure_channel(f"127.0.0.1:{self.ports['gateway']}")
        try:
            for name in (*self.services, "gateway"):
                self.start(name)
            grpc.channel_ready_future(self.gateway_channel).result(timeout=60)
            self.wait_until_serving()
        except BaseException:
            self.__exit__()  # a suite that never served leaves no process behind
            raise
        return self

    def wait_until_serving(self):
        """Until every service has migrated and the gateway has seen it healthy."""
        contacts = contacts_pb2_grpc.ContactsServiceStub(self.gateway_channel)
        sales = sales_pb2_grpc.SalesServiceStub(self.gateway_channel)
        support = support_pb2_grpc.SupportServiceStub(self.gateway_channel)
        metadata = [("authorization", "Bearer " + token("probe", ["admin"]))]
        deadline = time.time() + 60
        while True:
            try:
                contacts.ListContacts(contacts_pb2.ListContactsRequest(), metadata=metadata)
                if "sales" in self.services:
                    sales.ListLeads(sales_pb2.ListLeadsRequest(), metadata=metadata)
                if "support" in self.services:
                    support.ListTickets(support_pb2.ListTicketsRequest(), metadata=metadata)
                return
            except grpc.RpcError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)

    def __exit__(self, *exc):
        self.gateway_channel.close()
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            process.wait(timeout=30)
        self.folder.cleanup()


def postgres_answers():
    with contextlib.suppress(OSError), socket.create_connection(POSTGRES, timeout=2):
        return True
    return False


@contextlib.contextmanager
def postgres_database(test: unittest.TestCase):
    """A new PostgreSQL database, dropped afterwards. Skips the test when no
    server answers, except under CI, where that fails it."""
    if not postgres_answers():
        if os.environ.get("CI") == "true":
            test.fail(f"CI=true and no PostgreSQL answers on {POSTGRES[0]}:{POSTGRES[1]}")
        test.skipTest("no PostgreSQL on 127.0.0.1:5432")
    import psycopg

    name = "crm_py_" + uuid.uuid4().hex[:12]
    admin = f"postgresql://postgres@{POSTGRES[0]}:{POSTGRES[1]}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://postgres@{POSTGRES[0]}:{POSTGRES[1]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def require_in_ci(test: unittest.TestCase, what):
    """Skips the test for lack of `what`, except under CI, where that fails it."""
    if os.environ.get("CI") == "true":
        test.fail(f"CI=true and {what}")
    test.skipTest(what)


class PrivatePostgres:
    """A PostgreSQL server of its own (initdb into a temporary folder, on a
    free port), so a test can restart it without touching the machine's
    server or any other test's database. Runs as the `postgres` user when the
    tests run as root, which PostgreSQL refuses to run as."""

    def __init__(self, test: unittest.TestCase):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            require_in_ci(test, "no PostgreSQL server binaries under /usr/lib/postgresql")
        self.bin = os.path.dirname(found[-1])
        self.port = free_port()
        self.folder = tempfile.mkdtemp(prefix="crm-pg-")
        self.data = os.path.join(self.folder, "data")
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(self.folder, "postgres")
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, tool, *args):
        subprocess.run(
            [*self.as_postgres, os.path.join(self.bin, tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start(self):
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        self.run("pg_ctl", "-D", self.data, "-o", options, "-l", os.path.join(self.folder, "log"), "-w", "start")

    def stop(self, mode="fast"):
        """`immediate` is a crash: no checkpoint, recovery from the WAL at the next start."""
        self.run("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def __enter__(self):
        try:
            self.run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")
            self.start()
        except BaseException:
            self.__exit__()  # no server or data folder left behind
            raise
        return self

    def __exit__(self, *exc):
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def small_filesystem(test: unittest.TestCase, size):
    """A tmpfs of `size` (as mount takes it: "2m"), to fill up; resize it with
    `resize_filesystem`. Needs the right to mount (root in the sandbox)."""
    folder = tempfile.mkdtemp(prefix="crm-small-")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", folder], capture_output=True)
    if mounted.returncode != 0:
        os.rmdir(folder)
        require_in_ci(test, f"no right to mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", folder], check=False)
        shutil.rmtree(folder, ignore_errors=True)


def resize_filesystem(folder, size):
    subprocess.run(["mount", "-o", f"remount,size={size}", folder], check=True)
