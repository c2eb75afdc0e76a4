"""A Python client generated from proto/ against the real contacts, sales, support
and gateway binaries: every call goes through the gateway, as a real client's would."""

import queue
import threading
import time
import unittest
import uuid

import grpc
from google.protobuf import field_mask_pb2

from crm.common.v1 import common_pb2
from crm.contacts.v1 import contacts_pb2, contacts_pb2_grpc
from crm.sales.v1 import sales_pb2, sales_pb2_grpc
from crm.support.v1 import support_pb2, support_pb2_grpc
import rpc_status_pb2
from support import Suite, token


class ThroughGatewayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.suite = Suite().__enter__()
        cls.channel = cls.suite.gateway_channel
        cls.stub = contacts_pb2_grpc.ContactsServiceStub(cls.channel)
        cls.sales = sales_pb2_grpc.SalesServiceStub(cls.channel)
        cls.admin = [("authorization", "Bearer " + token("acme", ["admin"]))]

    @classmethod
    def tearDownClass(cls):
        cls.suite.__exit__(None, None, None)

    def test_create_get_update_list(self):
        created = self.stub.CreateContact(
            contacts_pb2.CreateContactRequest(
                contact=contacts_pb2.Contact(
                    given_name="Grace",
                    family_name="Hopper",
                    emails=[contacts_pb2.EmailAddress(address="grace@example.com")],
                    lifecycle_stage=contacts_pb2.LIFECYCLE_STAGE_LEAD,
                ),
                request_id=str(uuid.uuid4()),
            ),
            metadata=self.admin,
        )
        self.assertTrue(created.name.startswith("contacts/"))
        self.assertEqual(created.display_name, "Grace Hopper")

        fetched = self.stub.GetContact(contacts_pb2.GetContactRequest(name=created.name), metadata=self.admin)
        self.assertEqual(fetched.emails[0].address, "grace@example.com")

        created.lifecycle_stage = contacts_pb2.LIFECYCLE_STAGE_CUSTOMER
        updated = self.stub.UpdateContact(
            contacts_pb2.UpdateContactRequest(
                contact=created, update_mask=field_mask_pb2.FieldMask(paths=["lifecycle_stage"])
            ),
            metadata=self.admin,
        )
        self.assertEqual(updated.lifecycle_stage, contacts_pb2.LIFECYCLE_STAGE_CUSTOMER)
        self.assertNotEqual(updated.etag, created.etag)

        # The first etag is stale now.
        with self.assertRaises(grpc.RpcError) as stale:
            self.stub.UpdateContact(
                contacts_pb2.UpdateContactRequest(
                    contact=created, update_mask=field_mask_pb2.FieldMask(paths=["job_title"])
                ),
                metadata=self.admin,
            )
        self.assertEqual(stale.exception.code(), grpc.StatusCode.ABORTED)

        listed = self.stub.ListContacts(
            contacts_pb2.ListContactsRequest(filter='lifecycle_stage = "CUSTOMER"'), metadata=self.admin
        )
        self.assertIn(created.name, [c.name for c in listed.contacts])

    def test_bad_input_names_the_field(self):
        with self.assertRaises(grpc.RpcError) as error:
            self.stub.CreateContact(
                contacts_pb2.CreateContactRequest(
                    contact=contacts_pb2.Contact(emails=[contacts_pb2.EmailAddress(address="not-an-email")])
                ),
                metadata=self.admin,
            )
        self.assertEqual(error.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        details = dict(error.exception.trailing_metadata())["grpc-status-details-bin"]
        status = rpc_status_pb2.Status.FromString(details)
        fields = []
        for any_detail in status.details:
            if any_detail.type_url.endswith("google.rpc.BadRequest"):
                bad_request = rpc_status_pb2.BadRequest.FromString(any_detail.value)
                fields += [v.field for v in bad_request.field_violations]
        self.assertIn("contact.emails[0].address", fields)

    def test_no_token_is_unauthenticated_and_other_tenants_see_nothing(self):
        with self.assertRaises(grpc.RpcError) as error:
            self.stub.ListContacts(contacts_pb2.ListContactsRequest())
        self.assertEqual(error.exception.code(), grpc.StatusCode.UNAUTHENTICATED)

        mine = self.stub.CreateContact(
            contacts_pb2.CreateContactRequest(contact=contacts_pb2.Contact(given_name="Only", family_name="Mine")),
            metadata=self.admin,
        )
        other = [("authorization", "Bearer " + token("globex", ["admin"]))]
        with self.assertRaises(grpc.RpcError) as error:
            self.stub.GetContact(contacts_pb2.GetContactRequest(name=mine.name), metadata=other)
        self.assertEqual(error.exception.code(), grpc.StatusCode.NOT_FOUND)


    def test_streams_pass_through_the_gateway(self):
        rows = [
            contacts_pb2.ImportContactsRequest(
                contact=contacts_pb2.Contact(
                    given_name=f"Row{i}",
                    family_name="Streamed",
                    emails=[contacts_pb2.EmailAddress(address=f"row{i}@stream.example.com")],
                )
            )
            for i in range(30)
        ]
        results = [
            row
            for batch in self.stub.ImportContacts(iter(rows), metadata=self.admin)
            for row in batch.results
        ]
        self.assertEqual(len(results), 30)
        self.assertTrue(all(r.outcome == contacts_pb2.IMPORT_OUTCOME_CREATED for r in results))

        exported = [
            contact
            for page in self.stub.ExportContacts(
                contacts_pb2.ExportContactsRequest(filter='family_name = "Streamed"'), metadata=self.admin
            )
            for contact in page.contacts
        ]
        self.assertEqual(len(exported), 30)

    def test_a_customer_and_an_agent_chat_through_the_gateway(self):
        # A channel of its own: its streams and their threads end with it,
        # and the other tests' shared channel never sees them.
        channel = grpc.insecure_channel(f"127.0.0.1:{self.suite.ports['gateway']}")
        self.addCleanup(channel.close)
        support = support_pb2_grpc.SupportServiceStub(channel)
        bob = [("authorization", "Bearer " + token("acme", ["support"], subject="bob"))]
        started = support.StartChat(
            support_pb2.StartChatRequest(
                chat=support_pb2.Chat(requester_email="grace@chat.example.com", requester_display_name="Grace")
            ),
            metadata=self.admin,
        )
        chat = started.chat
        self.assertEqual(chat.state, support_pb2.CHAT_STATE_WAITING)

        def side(connect, request_type, join, metadata=None):
            """A participant: a queue of actions to send, and a thread reading what arrives."""
            outgoing, arrived = queue.Queue(), queue.Queue()
            outgoing.put(support_pb2.ChatAction(join=join))

            def requests():
                while (action := outgoing.get()) is not None:
                    yield request_type(action=action)

            def read():
                try:
                    for message in connect(requests(), metadata=metadata):
                        arrived.put(message)
                    arrived.put("ended")
                except grpc.RpcError as error:
                    arrived.put(error)

            threading.Thread(target=read, daemon=True).start()
            return outgoing, arrived

        def until(arrived, check):
            deadline = time.time() + 10
            while time.time() < deadline:
                message = arrived.get(timeout=max(0.0, deadline - time.time()))
                if check(message):
                    return message
            self.fail("nothing arrived in time")

        def entry(sequence):
            return lambda m: not isinstance(m, str) and m.HasField("message") and m.message.sequence == sequence

        # The customer holds no account: the token from StartChat is the proof.
        customer_out, customer_in = side(
            support.ConnectCustomerChat,
            support_pb2.ConnectCustomerChatRequest,
            support_pb2.JoinChat(customer_token=started.customer_token),
        )
        customer_out.put(support_pb2.ChatAction(send=support_pb2.SendChatMessage(text="Hello from Python", client_message_id="p1")))
        until(customer_in, entry(1))
        support.AcceptChat(support_pb2.AcceptChatRequest(name=chat.name), metadata=bob)
        agent_out, agent_in = side(
            support.ConnectChat, support_pb2.ConnectChatRequest, support_pb2.JoinChat(chat=chat.name), bob
        )
        self.assertEqual(until(agent_in, entry(1)).message.text, "Hello from Python")
        agent_out.put(support_pb2.ChatAction(send=support_pb2.SendChatMessage(text="Hello, Grace", client_message_id="b1")))
        reply = until(customer_in, entry(3)).message
        self.assertEqual((reply.author, reply.text), ("bob", "Hello, Grace"))

        customer_out.put(support_pb2.ChatAction(end=support_pb2.EndChatAction()))
        self.assertEqual(until(agent_in, entry(4)).message.kind, support_pb2.CHAT_MESSAGE_KIND_ENDED)
        self.assertEqual(until(agent_in, lambda m: isinstance(m, str)), "ended")
        customer_out.put(None)
        agent_out.put(None)

        ticket = support.CreateTicketFromChat(support_pb2.CreateTicketFromChatRequest(name=chat.name), metadata=bob)
        self.assertEqual(ticket.channel, support_pb2.TICKET_CHANNEL_CHAT)
        self.assertIn("Grace: Hello from Python", ticket.description)

        # A forged token is refused, not an error of the server's.
        forged_out, refused = side(
            support.ConnectCustomerChat,
            support_pb2.ConnectCustomerChatRequest,
            support_pb2.JoinChat(customer_token=started.customer_token + "x"),
        )
        forged_out.put(None)
        error = refused.get(timeout=10)
        self.assertIsInstance(error, grpc.RpcError)
        self.assertEqual(error.code(), grpc.StatusCode.PERMISSION_DENIED)

    def test_unknown_service_and_deadline(self):
        unknown = self.channel.unary_unary(
            "/crm.nothing.v1.Nothing/Do",
            request_serializer=lambda _: b"",
            response_deserializer=lambda data: data,
        )
        with self.assertRaises(grpc.RpcError) as error:
            unknown(b"", metadata=self.admin)
        self.assertEqual(error.exception.code(), grpc.StatusCode.UNIMPLEMENTED)

        # A call whose deadline has passed is never answered: the client gives
        # up (DEADLINE_EXCEEDED, or CANCELLED when it gives up before the call
        # leaves). A deadline of a microsecond is no test: a warm connection
        # can answer inside a timer's tick. The gateway's own deadline rules
        # are tested in services/gateway (tests/it/limits.rs).
        with self.assertRaises(grpc.RpcError) as error:
            self.stub.ListContacts(contacts_pb2.ListContactsRequest(), metadata=self.admin, timeout=0)
        self.assertIn(
            error.exception.code(),
            (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED),
        )


    def test_a_lead_becomes_revenue_through_the_gateway(self):
        lead = self.sales.CreateLead(
            sales_pb2.CreateLeadRequest(
                lead=sales_pb2.Lead(
                    given_name="Katherine",
                    family_name="Johnson",
                    email="katherine@nasa.example",
                    company_name="NASA",
                    source=sales_pb2.LEAD_SOURCE_REFERRAL,
                ),
                request_id=str(uuid.uuid4()),
            ),
            metadata=self.admin,
        )
        self.assertEqual(lead.status, sales_pb2.LEAD_STATUS_NEW)
        self.assertEqual(lead.owner, "py")

        converted = self.sales.ConvertLead(
            sales_pb2.ConvertLeadRequest(
                name=lead.name,
                create_opportunity=True,
                amount=common_pb2.Money(currency_code="USD", units=25000),
                expected_close_date=time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400 * 10)),
            ),
            metadata=self.admin,
        )
        contact = self.stub.GetContact(contacts_pb2.GetContactRequest(name=converted.contact), metadata=self.admin)
        self.assertEqual(contact.emails[0].address, "katherine@nasa.example")

        pipeline = self.sales.GetPipeline(
            sales_pb2.GetPipelineRequest(name=converted.opportunity.pipeline), metadata=self.admin
        )
        won = next(s for s in pipeline.stages if s.kind == sales_pb2.STAGE_KIND_WON)
        deal = converted.opportunity
        deal.stage = won.name
        deal = self.sales.UpdateOpportunity(
            sales_pb2.UpdateOpportunityRequest(opportunity=deal, update_mask=field_mask_pb2.FieldMask(paths=["stage"])),
            metadata=self.admin,
        )
        self.assertEqual(deal.state, sales_pb2.OPPORTUNITY_STATE_WON)

        now = time.time()
        request = sales_pb2.GetForecastRequest()
        request.period_start.FromSeconds(int(now - 86400))
        request.period_end.FromSeconds(int(now + 86400 * 30))
        forecast = self.sales.GetForecast(request, metadata=self.admin)
        usd = next(line for line in forecast.lines if line.currency_code == "USD")
        self.assertEqual(usd.closed_won.units, 25000)

        with self.assertRaises(grpc.RpcError) as error:
            self.sales.CreateLead(sales_pb2.CreateLeadRequest(lead=sales_pb2.Lead(given_name="x")), metadata=self.admin)
        self.assertEqual(error.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)


if __name__ == "__main__":
    unittest.main()
