"""Faults with real processes: contacts killed with SIGKILL in the middle of
10,000 creates through the gateway, on SQLite and PostgreSQL; and the
PostgreSQL server itself crashed and started again under the same load.
Clients retry what was not acknowledged with the same request_id, as a client
should; afterwards every acknowledged contact is there with its event, and no
create happened twice."""

import shutil
import threading
import time
import unittest
import uuid

import grpc
import psycopg

from crm.contacts.v1 import contacts_pb2, contacts_pb2_grpc
from crm.events.v1 import events_pb2, events_pb2_grpc
from support import (
    PrivatePostgres,
    Suite,
    postgres_database,
    resize_filesystem,
    small_filesystem,
    token,
)

WRITES = 10000
WRITERS = 8


def assert_exactly_once(test, channel, metadata, acknowledged):
    """The tenant holds exactly the `acknowledged` contacts, each with one ContactCreated."""
    stub = contacts_pb2_grpc.ContactsServiceStub(channel)
    names = set()
    page_token = ""
    while True:
        page = stub.ListContacts(contacts_pb2.ListContactsRequest(page_size=1000, page_token=page_token), metadata=metadata)
        names.update(c.name for c in page.contacts)
        page_token = page.next_page_token
        if not page_token:
            break
    test.assertEqual(names, acknowledged, "exactly the acknowledged contacts")
    feed = events_pb2_grpc.EventFeedServiceStub(channel)
    created_events = [
        response.event.subject
        for response in feed.StreamEvents(
            events_pb2.StreamEventsRequest(types=["crm.contacts.v1.ContactCreated"]),
            metadata=metadata + [("x-crm-upstream", "contacts")],
        )
    ]
    test.assertEqual(sorted(created_events), sorted(names), "one ContactCreated per contact")


class KilledDuringWritesTest(unittest.TestCase):
    def writes_survive_a_kill(self, database_url):
        with Suite(contacts_db=database_url, services=("contacts",)) as suite:
            tenant = "faults-" + uuid.uuid4().hex[:8]
            metadata = [("authorization", "Bearer " + token(tenant, ["admin"]))]
            channel = grpc.insecure_channel(f"127.0.0.1:{suite.ports['gateway']}")
            stub = contacts_pb2_grpc.ContactsServiceStub(channel)
            acknowledged = {}
            lock = threading.Lock()
            unavailable = [0]

            def write(slot):
                for i in range(slot, WRITES, WRITERS):
                    email = f"w{i}@kill.example.com"
                    request = contacts_pb2.CreateContactRequest(
                        contact=contacts_pb2.Contact(
                            given_name=f"W{i}",
                            family_name="Killed",
                            emails=[contacts_pb2.EmailAddress(address=email)],
                        ),
                        request_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{i}")),
                    )
                    deadline = time.time() + 120
                    while True:
                        try:
                            created = stub.CreateContact(request, metadata=metadata, timeout=10)
                            break
                        except grpc.RpcError as error:
                            if time.time() > deadline:
                                raise
                            if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                                time.sleep(0.2)  # over the tenant's rate: back off
                                continue
                            if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                                raise
                            with lock:
                                unavailable[0] += 1
                            time.sleep(0.05)
                    with lock:
                        acknowledged[email] = created.name

            threads = [threading.Thread(target=write, args=(slot,)) for slot in range(WRITERS)]
            for thread in threads:
                thread.start()
            while len(acknowledged) < WRITES // 3:
                time.sleep(0.01)
            suite.kill("contacts")
            killed_at = len(acknowledged)
            time.sleep(0.5)
            suite.start("contacts")
            for thread in threads:
                thread.join()
            print(
                f"\ncontacts killed after {killed_at} acknowledged creates; "
                f"{unavailable[0]} calls failed while it was down and were retried"
            )
            self.assertGreater(unavailable[0], 0, "the kill was felt")
            self.assertEqual(len(acknowledged), WRITES)

            # Every acknowledged contact is there, once, with its event.
            assert_exactly_once(self, channel, metadata, set(acknowledged.values()))
            channel.close()

    def test_sqlite(self):
        self.writes_survive_a_kill(None)

    def test_postgres(self):
        with postgres_database(self) as url:
            self.writes_survive_a_kill(url)


def health_request(service):
    """A grpc.health.v1.HealthCheckRequest, encoded by hand (field 1, a string)."""
    name = service.encode()
    return bytes([0x0A, len(name)]) + name


def serving_status(answer):
    """The status of an encoded HealthCheckResponse (field 1, a varint); 0 when unset."""
    return answer[1] if len(answer) >= 2 and answer[0] == 0x08 else 0


SERVING, NOT_SERVING = 1, 2


class DatabaseRestartTest(unittest.TestCase):
    """PostgreSQL crashes (`pg_ctl stop -m immediate`) and comes back after a
    few seconds while eight clients create contacts through the gateway. While
    it is down, calls fail with UNAVAILABLE (never INTERNAL) and the service's
    health says NOT_SERVING; afterwards the same service process serves again
    without a restart, and every acknowledged create is there with its event."""

    WRITES = 3000

    def test_postgres_restart_during_writes(self):
        with PrivatePostgres(self) as postgres, Suite(contacts_db=postgres.url, services=("contacts",)) as suite:
            tenant = "restart-" + uuid.uuid4().hex[:8]
            metadata = [("authorization", "Bearer " + token(tenant, ["admin"]))]
            channel = grpc.insecure_channel(f"127.0.0.1:{suite.ports['gateway']}")
            stub = contacts_pb2_grpc.ContactsServiceStub(channel)
            acknowledged, failures, statuses = {}, {}, []
            lock = threading.Lock()
            writing = threading.Event()
            writing.set()

            def write(slot):
                for i in range(slot, self.WRITES, WRITERS):
                    request = contacts_pb2.CreateContactRequest(
                        contact=contacts_pb2.Contact(given_name=f"R{i}", family_name="Restarted"),
                        request_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{i}")),
                    )
                    deadline = time.time() + 120
                    while True:
                        try:
                            created = stub.CreateContact(request, metadata=metadata, timeout=10)
                            break
                        except grpc.RpcError as error:
                            with lock:
                                failures[error.code()] = failures.get(error.code(), 0) + 1
                            if time.time() > deadline or error.code() not in RETRIED:
                                raise
                            time.sleep(0.1)
                    with lock:
                        acknowledged[i] = created.name

            def watch_health():
                direct = grpc.insecure_channel(f"127.0.0.1:{suite.ports['contacts']}")
                check = direct.unary_unary("/grpc.health.v1.Health/Check")
                while writing.is_set():
                    try:
                        status = serving_status(check(health_request(""), timeout=2))
                    except grpc.RpcError as error:
                        status = error.code()
                    if not statuses or statuses[-1] != status:
                        statuses.append(status)
                    time.sleep(0.05)
                direct.close()

            errors = []

            def guarded(work, *args):
                try:
                    work(*args)
                except Exception as error:  # noqa: BLE001 - reported by the test below
                    errors.append(repr(error))

            watcher = threading.Thread(target=watch_health, daemon=True)
            threads = [
                threading.Thread(target=guarded, args=(write, slot), daemon=True) for slot in range(WRITERS)
            ]
            watcher.start()
            try:
                for thread in threads:
                    thread.start()
                deadline = time.time() + 120
                while len(acknowledged) < self.WRITES // 3:
                    self.assertFalse(errors, "a writer failed before the crash")
                    self.assertLess(time.time(), deadline, "the writes never got going")
                    time.sleep(0.01)
                postgres.stop("immediate")
                crashed_at = len(acknowledged)
                time.sleep(3)
                postgres.start()
                for thread in threads:
                    thread.join(timeout=300)
            finally:
                writing.clear()
                watcher.join(timeout=10)
            self.assertFalse(errors, f"writers failed: {errors}")
            print(
                f"\nPostgreSQL crashed after {crashed_at} acknowledged creates; failures while it was down: "
                f"{ {code.name: n for code, n in failures.items()} }; health: {statuses}"
            )
            self.assertEqual(len(acknowledged), self.WRITES, "every create succeeded in the end")
            self.assertIn(grpc.StatusCode.UNAVAILABLE, failures, "the outage was felt as UNAVAILABLE")
            self.assertFalse(set(failures) - RETRIED, f"only retryable failures: {failures}")
            self.assertIn(NOT_SERVING, statuses, "health said NOT_SERVING while the database was down")
            self.assertEqual(statuses[-1], SERVING, "and SERVING again after")
            self.assertIsNone(suite.processes["contacts"].poll(), "the same process recovered")

            assert_exactly_once(self, channel, metadata, set(acknowledged.values()))
            channel.close()


class StorageFaultTest(unittest.TestCase):
    """The database's disk fills up, or the database turns read-only (as a
    standby after a failover): writes fail with UNAVAILABLE and a message
    that says so, never INTERNAL; reads go on; once space is freed (or writes
    allowed again) the same process writes again."""

    def fill(self, stub, metadata, tenant):
        """Creates contacts until one fails; answers how many went in and the error."""
        for i in range(100_000):
            request = contacts_pb2.CreateContactRequest(
                contact=contacts_pb2.Contact(
                    given_name=f"Fill{i}", family_name="F" * 200, job_title="J" * 200, tags=[f"t{i}"]
                ),
            )
            try:
                stub.CreateContact(request, metadata=metadata, timeout=10)
            except grpc.RpcError as error:
                return i, error
        self.fail("the disk never filled up")

    def full_then_freed(self, suite, free_space):
        tenant = "full-" + uuid.uuid4().hex[:8]
        metadata = [("authorization", "Bearer " + token(tenant, ["admin"]))]
        stub = contacts_pb2_grpc.ContactsServiceStub(suite.gateway_channel)
        created, error = self.fill(stub, metadata, tenant)
        print(f"\nthe disk filled up after {created} creates: {error.code().name}: {error.details()}")
        self.assertGreater(created, 0)
        self.assertEqual(error.code(), grpc.StatusCode.UNAVAILABLE, error.details())
        self.assertIn("out of space", error.details())
        listed = stub.ListContacts(contacts_pb2.ListContactsRequest(page_size=5), metadata=metadata)
        self.assertEqual(len(listed.contacts), min(created, 5), "reads go on while the disk is full")
        free_space()
        stub.CreateContact(
            contacts_pb2.CreateContactRequest(contact=contacts_pb2.Contact(given_name="After")),
            metadata=metadata,
            timeout=10,
        )
        self.assertIsNone(suite.processes["contacts"].poll(), "the same process writes again")

    def test_sqlite_disk_full(self):
        # The migrated schema's write-ahead log takes about 700 KiB (the
        # search indexes' FTS5 tables among it) before the first create.
        with small_filesystem(self, "2m") as folder:
            url = f"sqlite://{folder}/contacts.db?mode=rwc"
            with Suite(contacts_db=url, services=("contacts",)) as suite:
                self.full_then_freed(suite, lambda: resize_filesystem(folder, "64m"))

    def test_postgres_disk_full(self):
        # The tables live on a small volume (a tablespace); the WAL does not,
        # as in a deployment whose data volume fills up.
        with PrivatePostgres(self) as postgres, small_filesystem(self, "4m") as folder:
            if postgres.as_postgres:
                shutil.chown(folder, "postgres")
            with psycopg.connect(postgres.url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
                conn.execute(f"CREATE TABLESPACE small LOCATION '{folder}'")
                conn.execute("CREATE DATABASE crm")
                conn.execute("ALTER DATABASE crm SET default_tablespace = small")
            url = postgres.url.rsplit("/", 1)[0] + "/crm"
            with Suite(contacts_db=url, services=("contacts",)) as suite:
                self.full_then_freed(suite, lambda: resize_filesystem(folder, "64m"))

    def test_postgres_read_only(self):
        with postgres_database(self) as url:
            with Suite(contacts_db=url, services=("contacts",)) as suite:
                tenant = "ro-" + uuid.uuid4().hex[:8]
                metadata = [("authorization", "Bearer " + token(tenant, ["admin"]))]
                stub = contacts_pb2_grpc.ContactsServiceStub(suite.gateway_channel)
                create = contacts_pb2.CreateContactRequest(contact=contacts_pb2.Contact(given_name="Before"))
                stub.CreateContact(create, metadata=metadata, timeout=10)
                name = url.rsplit("/", 1)[1]
                admin = url.rsplit("/", 1)[0].replace("postgres://", "postgresql://") + "/postgres"

                def read_only(on):
                    # A standby after a failover: every new session is read-only.
                    with psycopg.connect(admin, autocommit=True) as conn:
                        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {on}')
                        conn.execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
                        )

                read_only("on")
                refused = None
                deadline = time.time() + 30
                while refused is None:
                    # Sessions opened before the switch may finish a write or two.
                    try:
                        stub.CreateContact(create, metadata=metadata, timeout=10)
                    except grpc.RpcError as error:
                        self.assertEqual(error.code(), grpc.StatusCode.UNAVAILABLE, error.details())
                        if "read-only" in error.details():
                            refused = error
                    self.assertLess(time.time(), deadline, "writes were never refused")
                    time.sleep(0.1)
                print(f"\na read-only database: {refused.code().name}: {refused.details()}")
                listed = stub.ListContacts(contacts_pb2.ListContactsRequest(), metadata=metadata)
                self.assertGreaterEqual(len(listed.contacts), 1, "reads go on")
                read_only("off")
                deadline = time.time() + 30
                while True:
                    try:
                        stub.CreateContact(create, metadata=metadata, timeout=10)
                        break
                    except grpc.RpcError as error:
                        self.assertEqual(error.code(), grpc.StatusCode.UNAVAILABLE, error.details())
                        self.assertLess(time.time(), deadline, "writes never came back")
                        time.sleep(0.1)
                self.assertIsNone(suite.processes["contacts"].poll(), "the same process writes again")


# What a client retries: the service or the database is away for a moment.
RETRIED = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


if __name__ == "__main__":
    unittest.main()
