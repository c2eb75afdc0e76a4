"""Faults with real processes: contacts killed with SIGKILL in the middle of
10,000 creates through the gateway, on SQLite and PostgreSQL; and the
PostgreSQL server itself crashed and started again under the same load.
Clients retry what was not acknowledged with the same request_id, as a client
should; afterwards every acknowledged contact is there with its event, and no
create happened twice."""

import threading
import time
import unittest
import uuid

import grpc

from crm.contacts.v1 import contacts_pb2, contacts_pb2_grpc
from crm.events.v1 import events_pb2, events_pb2_grpc
from support import PrivatePostgres, Suite, postgres_database, token

WRITES = 10000
WRITERS = 8


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
            names = set()
            page_token = ""
            while True:
                page = stub.ListContacts(
                    contacts_pb2.ListContactsRequest(page_size=1000, page_token=page_token), metadata=metadata
                )
                names.update(c.name for c in page.contacts)
                page_token = page.next_page_token
                if not page_token:
                    break
            self.assertEqual(names, set(acknowledged.values()), "exactly the acknowledged contacts")
            feed = events_pb2_grpc.EventFeedServiceStub(channel)
            created_events = [
                response.event.subject
                for response in feed.StreamEvents(
                    events_pb2.StreamEventsRequest(types=["crm.contacts.v1.ContactCreated"]),
                    metadata=metadata + [("x-crm-upstream", "contacts")],
                )
            ]
            self.assertEqual(sorted(created_events), sorted(names), "one ContactCreated per contact")
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

            watcher = threading.Thread(target=watch_health)
            watcher.start()
            threads = [threading.Thread(target=write, args=(slot,)) for slot in range(WRITERS)]
            for thread in threads:
                thread.start()
            while len(acknowledged) < self.WRITES // 3:
                time.sleep(0.01)
            postgres.stop("immediate")
            crashed_at = len(acknowledged)
            time.sleep(3)
            postgres.start()
            for thread in threads:
                thread.join()
            writing.clear()
            watcher.join()
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

            names = set()
            page_token = ""
            while True:
                page = stub.ListContacts(
                    contacts_pb2.ListContactsRequest(page_size=1000, page_token=page_token), metadata=metadata
                )
                names.update(c.name for c in page.contacts)
                page_token = page.next_page_token
                if not page_token:
                    break
            self.assertEqual(names, set(acknowledged.values()), "exactly the acknowledged contacts")
            feed = events_pb2_grpc.EventFeedServiceStub(channel)
            created_events = [
                response.event.subject
                for response in feed.StreamEvents(
                    events_pb2.StreamEventsRequest(types=["crm.contacts.v1.ContactCreated"]),
                    metadata=metadata + [("x-crm-upstream", "contacts")],
                )
            ]
            self.assertEqual(sorted(created_events), sorted(names), "one ContactCreated per contact")
            channel.close()


# What a client retries: the service or the database is away for a moment.
RETRIED = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


if __name__ == "__main__":
    unittest.main()
