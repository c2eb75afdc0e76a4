"""A Python client generated from proto/ against the real contacts, sales and
gateway binaries: every call goes through the gateway, as a real client's would."""

import time
import unittest
import uuid

import grpc
from google.protobuf import field_mask_pb2

from crm.common.v1 import common_pb2
from crm.contacts.v1 import contacts_pb2, contacts_pb2_grpc
from crm.sales.v1 import sales_pb2, sales_pb2_grpc
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

    def test_unknown_service_and_deadline(self):
        unknown = self.channel.unary_unary(
            "/crm.nothing.v1.Nothing/Do",
            request_serializer=lambda _: b"",
            response_deserializer=lambda data: data,
        )
        with self.assertRaises(grpc.RpcError) as error:
            unknown(b"", metadata=self.admin)
        self.assertEqual(error.exception.code(), grpc.StatusCode.UNIMPLEMENTED)

        # A deadline that has already passed never reaches the service.
        with self.assertRaises(grpc.RpcError) as error:
            self.stub.ListContacts(contacts_pb2.ListContactsRequest(), metadata=self.admin, timeout=0.000001)
        self.assertEqual(error.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)


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
