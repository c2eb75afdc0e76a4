"""grpcio under load: one ImportContacts stream of 100,000 rows, direct to
contacts and through the gateway, then four streams at once through the
gateway, on SQLite and on PostgreSQL, while other clients call GetContact
through the same gateway. grpcio writes every message
in an HTTP/2 DATA frame of its own (about 100 bytes here), the pattern that
used to get connections closed with GOAWAY "too_many_data_frames"; every
row must come back CREATED and every other call must succeed.

Prints rows per second for each run (the README's benchmark quotes them)."""

import os
import threading
import time
import unittest
import urllib.request
import uuid

import grpc

from crm.contacts.v1 import contacts_pb2, contacts_pb2_grpc
from support import Suite, postgres_database, token

ROWS = int(os.environ.get("CRM_PY_IMPORT_ROWS", "100000"))
SIDE_CLIENTS = 4
# Imports at once through the gateway, which carries them all on its one
# connection to the replica, and rows in each.
CONCURRENT_IMPORTS = 4
CONCURRENT_ROWS = 20000


def import_all(stub, prefix, count, metadata):
    """Imports `count` rows; answers (created, [rows not created])."""
    created = 0
    other = []
    for response in stub.ImportContacts(rows(prefix, count), metadata=metadata, timeout=600):
        for result in response.results:
            if result.outcome == contacts_pb2.IMPORT_OUTCOME_CREATED:
                created += 1
            else:
                other.append((result.row, result.outcome, result.error))
    return created, other


def rows(prefix, count):
    for i in range(count):
        yield contacts_pb2.ImportContactsRequest(
            contact=contacts_pb2.Contact(
                given_name=f"Row{i}",
                family_name=prefix,
                emails=[contacts_pb2.EmailAddress(address=f"r{i}@{prefix}.example.com")],
            )
        )


class SideClients:
    """Clients calling GetContact through the gateway until stopped."""

    def __init__(self, gateway_port, metadata, name):
        self.metadata = metadata
        self.name = name
        self.stop = threading.Event()
        self.ok = 0
        self.failures = []
        self.lock = threading.Lock()
        self.channels = [grpc.insecure_channel(f"127.0.0.1:{gateway_port}") for _ in range(SIDE_CLIENTS)]
        self.threads = [threading.Thread(target=self.run, args=(c,)) for c in self.channels]

    def run(self, channel):
        stub = contacts_pb2_grpc.ContactsServiceStub(channel)
        while not self.stop.is_set():
            try:
                stub.GetContact(contacts_pb2.GetContactRequest(name=self.name), metadata=self.metadata, timeout=30)
                with self.lock:
                    self.ok += 1
            except grpc.RpcError as error:
                with self.lock:
                    self.failures.append(f"{error.code()}: {error.details()}")
            time.sleep(0.005)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join()
        for channel in self.channels:
            channel.close()


class LargeImportTest(unittest.TestCase):
    def import_on(self, database_url, label):
        with Suite(contacts_db=database_url, services=("contacts",)) as suite:
            tenant = "bulk-" + uuid.uuid4().hex[:8]
            metadata = [("authorization", "Bearer " + token(tenant, ["admin"]))]
            gateway = contacts_pb2_grpc.ContactsServiceStub(suite.gateway_channel)
            known = gateway.CreateContact(
                contacts_pb2.CreateContactRequest(contact=contacts_pb2.Contact(given_name="Known", family_name="One")),
                metadata=metadata,
            )
            direct_channel = grpc.insecure_channel(f"127.0.0.1:{suite.ports['contacts']}")
            routes = [("direct", contacts_pb2_grpc.ContactsServiceStub(direct_channel)), ("gateway", gateway)]
            side_total = 0
            for route, stub in routes:
                prefix = f"{route}-{label}"
                with SideClients(suite.ports["gateway"], metadata, known.name) as side:
                    started = time.monotonic()
                    created, other = import_all(stub, prefix, ROWS, metadata)
                    elapsed = time.monotonic() - started
                print(
                    f"\ngrpcio ImportContacts {label} {route}: {ROWS} rows in {elapsed:.1f} s = "
                    f"{ROWS / elapsed:,.0f} rows/s; {side.ok} GetContact calls beside it"
                )
                self.assertEqual(other, [], f"{label} {route}: rows not created")
                self.assertEqual(created, ROWS, f"{label} {route}")
                self.assertEqual(side.failures, [], f"{label} {route}: calls beside the import failed")
                self.assertGreater(side.ok, 0)
                side_total += side.ok
            direct_channel.close()

            # Several imports at once through the gateway, each on a client
            # connection of its own and all on the gateway's one to contacts.
            outcomes = {}

            def concurrent_import(i):
                channel = grpc.insecure_channel(f"127.0.0.1:{suite.ports['gateway']}")
                stub = contacts_pb2_grpc.ContactsServiceStub(channel)
                try:
                    outcomes[i] = import_all(stub, f"together{i}-{label}", CONCURRENT_ROWS, metadata)
                except grpc.RpcError as error:
                    outcomes[i] = f"{error.code()}: {error.details()}"
                finally:
                    channel.close()

            with SideClients(suite.ports["gateway"], metadata, known.name) as side:
                started = time.monotonic()
                threads = [threading.Thread(target=concurrent_import, args=(i,)) for i in range(CONCURRENT_IMPORTS)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                elapsed = time.monotonic() - started
            total = CONCURRENT_IMPORTS * CONCURRENT_ROWS
            print(
                f"grpcio ImportContacts {label} gateway, {CONCURRENT_IMPORTS} at once: {total} rows in "
                f"{elapsed:.1f} s = {total / elapsed:,.0f} rows/s"
            )
            self.assertEqual(outcomes, {i: (CONCURRENT_ROWS, []) for i in range(CONCURRENT_IMPORTS)})
            self.assertEqual(side.failures, [], f"{label}: calls beside the concurrent imports failed")
            side_total += side.ok

            # Everything is there, once.
            count = gateway.ListContacts(
                contacts_pb2.ListContactsRequest(
                    filter=f'family_name = "gateway-{label}"', page_size=1, include_total_size=True
                ),
                metadata=metadata,
            )
            self.assertEqual(count.total_size, ROWS)

            # The gateway counted every call it carried.
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{suite.ports['metrics']}/metrics").read().decode()
            get_ok = metric(metrics, "crm.contacts.v1.ContactsService/GetContact", "OK")
            import_ok = metric(metrics, "crm.contacts.v1.ContactsService/ImportContacts", "OK")
            self.assertEqual(get_ok, side_total)
            self.assertEqual(import_ok, 1 + CONCURRENT_IMPORTS)
            self.assertIn('crm_gateway_upstream_replicas{upstream="contacts",state="healthy"} 1', metrics)

    def test_sqlite(self):
        self.import_on(None, "sqlite")

    def test_postgres(self):
        with postgres_database(self) as url:
            self.import_on(url, "postgres")


def metric(text, method, code):
    prefix = f'crm_gateway_calls_total{{method="/{method}",code="{code}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return int(line[len(prefix):])
    return 0


if __name__ == "__main__":
    unittest.main()
