"""Faults with real processes: contacts killed with SIGKILL in the middle of
10,000 creates through the gateway, on SQLite and PostgreSQL. Clients retry
what was not acknowledged with the same request_id, as a client should; after
the restart every acknowledged contact is there with its event, and no
create happened twice."""

import threading
import time
import unittest
import uuid

import grpc

from crm.contacts.v1 import contacts_pb2, contacts_pb2_grpc
from crm.events.v1 import events_pb2, events_pb2_grpc
from support import Suite, postgres_database, token

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


if __name__ == "__main__":
    unittest.main()
