"""Traces and metrics as an operator's collector receives them: an OTLP/gRPC
receiver in this process (the collector's own protos, from the
opentelemetry-proto package), the real contacts, sales and gateway binaries
exporting to it, and a ConvertLead that crosses all three.

The client sends a W3C `traceparent` with a trace id of its own, so the call's
trace is found by id, never by timing. A hop that does not pass the context on
(for example `inject_trace_context` removed from `Credentials::subscription`
in shared/src/client.rs, which every sales -> contacts call goes through)
starts a new trace in the next service: its spans never turn up under the
client's trace id, and `trace_of` fails naming the span that is missing and the
trace it went to instead."""

import os
import threading
import time
import unittest
import uuid
from concurrent import futures

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from crm.sales.v1 import sales_pb2, sales_pb2_grpc
from support import Suite, token

CONVERT_LEAD = "/crm.sales.v1.SalesService/ConvertLead"
CREATE_CONTACT = "/crm.contacts.v1.ContactsService/CreateContact"
SERVER = trace_pb2.Span.SPAN_KIND_SERVER
ERROR = trace_pb2.Status.STATUS_CODE_ERROR
# Long enough for a debug build on a busy machine; polling returns as soon as
# the data is there.
PATIENCE = 60


def attributes(keyvalues):
    """OTLP attributes as a dict of plain values."""
    out = {}
    for kv in keyvalues:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind) if kind else None
    return out


class Span:
    """One received span, with the service that sent it."""

    def __init__(self, service, span):
        self.service = service
        self.name = span.name
        self.kind = span.kind
        self.trace_id = span.trace_id.hex()
        self.span_id = span.span_id.hex()
        self.parent_id = span.parent_span_id.hex()
        self.status = span.status.code
        self.attributes = attributes(span.attributes)

    @property
    def method(self):
        return self.attributes.get("rpc.method")

    def __repr__(self):
        return (
            f"<{self.service} {self.name!r} kind={self.kind} method={self.method} trace={self.trace_id} "
            f"span={self.span_id} parent={self.parent_id or '-'} status={self.status} "
            f"code={self.attributes.get('rpc.grpc.status_code')}>"
        )


class Receiver(trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer):
    """An OTLP/gRPC collector that keeps what it is sent."""

    def __init__(self):
        self.lock = threading.Lock()
        self.spans = []
        self.metrics = []  # (service, metric)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def stop(self):
        self.server.stop(grace=None)

    def Export(self, request, context):
        # One method name serves both services; the request type says which.
        if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
            received = [
                Span(attributes(resource.resource.attributes).get("service.name"), span)
                for resource in request.resource_spans
                for scope in resource.scope_spans
                for span in scope.spans
            ]
            with self.lock:
                self.spans.extend(received)
            return trace_service_pb2.ExportTraceServiceResponse()
        received = [
            (attributes(resource.resource.attributes).get("service.name"), metric)
            for resource in request.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        ]
        with self.lock:
            self.metrics.extend(received)
        return metrics_service_pb2.ExportMetricsServiceResponse()

    def received_spans(self):
        with self.lock:
            return list(self.spans)

    def received_metrics(self):
        with self.lock:
            return list(self.metrics)


def poll(found, what, describe, patience=PATIENCE):
    """`found()` once it is truthy; an AssertionError saying `what` was not
    seen, and `describe()` of what was, when the deadline passes first."""
    deadline = time.monotonic() + patience
    while True:
        result = found()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not received within {patience} s: {what}\n{describe()}")
        time.sleep(0.1)


class TelemetryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.receiver = Receiver()
        try:
            cls.suite = Suite(
                env={
                    "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{cls.receiver.port}",
                    "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                    "OTEL_BSP_SCHEDULE_DELAY": "100",
                    "OTEL_METRIC_EXPORT_INTERVAL": "300",
                }
            ).__enter__()
        except BaseException:
            cls.receiver.stop()
            raise
        cls.sales = sales_pb2_grpc.SalesServiceStub(cls.suite.gateway_channel)
        cls.seller = [("authorization", "Bearer " + token("otel", ["admin"]))]

    @classmethod
    def tearDownClass(cls):
        # The processes flush their exporters on the way out: the receiver
        # stays up until they have gone.
        cls.suite.__exit__(None, None, None)
        cls.receiver.stop()

    def create_lead(self):
        return self.sales.CreateLead(
            sales_pb2.CreateLeadRequest(
                lead=sales_pb2.Lead(
                    given_name="Ada",
                    family_name="Lovelace",
                    email=f"ada-{uuid.uuid4().hex[:8]}@example.com",
                    source=sales_pb2.LEAD_SOURCE_REFERRAL,
                ),
                request_id=str(uuid.uuid4()),
            ),
            metadata=self.seller,
        )

    def convert(self, lead_name):
        """ConvertLead as a traced client would call it: (trace id, the
        client's span id, the response or the RpcError)."""
        trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
        metadata = [*self.seller, ("traceparent", f"00-{trace_id}-{span_id}-01")]
        try:
            answer = self.sales.ConvertLead(sales_pb2.ConvertLeadRequest(name=lead_name), metadata=metadata)
        except grpc.RpcError as error:
            answer = error
        return trace_id, span_id, answer

    def trace_of(self, trace_id, expected):
        """The spans of `trace_id` once it holds a server span for each
        (service, method) in `expected`."""

        def spans():
            return [s for s in self.receiver.received_spans() if s.trace_id == trace_id]

        def complete():
            found = spans()
            have = {(s.service, s.method) for s in found if s.kind == SERVER}
            return found if all(e in have for e in expected) else None

        def describe():
            found = spans()
            have = {(s.service, s.method) for s in found if s.kind == SERVER}
            lines = [f"trace {trace_id} holds {len(found)} spans:", *map(repr, found)]
            for service, method in expected:
                if (service, method) in have:
                    continue
                elsewhere = [
                    s
                    for s in self.receiver.received_spans()
                    if s.service == service and s.method == method and s.kind == SERVER
                ]
                lines.append(f"missing {service} {method}; that span in other traces: {elsewhere[-3:]}")
            return "\n".join(lines)

        return poll(complete, f"trace {trace_id} with server spans {expected}", describe)

    def server_span(self, spans, service, method):
        matching = [s for s in spans if s.service == service and s.method == method and s.kind == SERVER]
        self.assertEqual(len(matching), 1, f"one {service} server span for {method} in {spans}")
        return matching[0]

    def test_a_converted_lead_is_one_trace_across_gateway_sales_and_contacts(self):
        lead = self.create_lead()
        trace_id, client_span, converted = self.convert(lead.name)
        self.assertNotIsInstance(converted, grpc.RpcError)
        self.assertTrue(converted.contact.startswith("contacts/"), converted)

        spans = self.trace_of(
            trace_id, [("gateway", CONVERT_LEAD), ("sales", CONVERT_LEAD), ("contacts", CREATE_CONTACT)]
        )
        by_id = {s.span_id: s for s in spans}
        self.assertEqual({s.service for s in spans}, {"gateway", "sales", "contacts"}, spans)

        gateway = self.server_span(spans, "gateway", CONVERT_LEAD)
        sales = self.server_span(spans, "sales", CONVERT_LEAD)
        contacts = self.server_span(spans, "contacts", CREATE_CONTACT)
        # The gateway continues the client's trace, under the client's span.
        self.assertEqual(gateway.parent_id, client_span, gateway)
        # Each hop's server span hangs under a span of the caller.
        self.assertEqual(by_id.get(sales.parent_id, sales).service, "gateway", f"sales' parent: {sales}")
        for span in spans:
            if span.service == "contacts" and span.kind == SERVER:
                parent = by_id.get(span.parent_id, span)
                self.assertEqual(parent.service, "sales", f"contacts' parent: {span} under {parent}")
        # No span points at a parent outside the trace (but the client's).
        for span in spans:
            self.assertIn(span.parent_id, {*by_id, client_span}, span)
        # Named after the method, as a trace view lists them.
        for span, method in ((gateway, CONVERT_LEAD), (sales, CONVERT_LEAD), (contacts, CREATE_CONTACT)):
            self.assertEqual(span.name, method.lstrip("/"), span)
            self.assertEqual(span.attributes.get("rpc.grpc.status_code"), 0, span)
            self.assertNotEqual(span.status, ERROR, span)

    def test_a_failed_call_carries_its_status_code(self):
        missing = f"leads/{uuid.uuid4()}"
        trace_id, client_span, error = self.convert(missing)
        self.assertIsInstance(error, grpc.RpcError)
        self.assertEqual(error.code(), grpc.StatusCode.NOT_FOUND)

        spans = self.trace_of(trace_id, [("gateway", CONVERT_LEAD), ("sales", CONVERT_LEAD)])
        gateway = self.server_span(spans, "gateway", CONVERT_LEAD)
        sales = self.server_span(spans, "sales", CONVERT_LEAD)
        self.assertEqual(gateway.parent_id, client_span, gateway)
        self.assertEqual(sales.parent_id, gateway.span_id, sales)
        for span in (gateway, sales):
            self.assertEqual(span.attributes.get("rpc.grpc.status_code"), grpc.StatusCode.NOT_FOUND.value[0], span)
            # A caller's mistake, not the server's: by the OpenTelemetry
            # conventions for gRPC servers, the status stays unset.
            self.assertNotEqual(span.status, ERROR, span)

    def test_a_server_fault_marks_the_spans_as_errors(self):
        lead = self.create_lead()
        self.suite.kill("contacts")
        try:
            trace_id, _, error = self.convert(lead.name)
        finally:
            self.suite.start("contacts")
            self.suite.wait_until_serving()
        self.assertIsInstance(error, grpc.RpcError)
        self.assertEqual(error.code(), grpc.StatusCode.UNAVAILABLE, error)

        spans = self.trace_of(trace_id, [("gateway", CONVERT_LEAD), ("sales", CONVERT_LEAD)])
        for span in (self.server_span(spans, "gateway", CONVERT_LEAD), self.server_span(spans, "sales", CONVERT_LEAD)):
            self.assertEqual(span.attributes.get("rpc.grpc.status_code"), grpc.StatusCode.UNAVAILABLE.value[0], span)
            self.assertEqual(span.status, ERROR, span)

    def test_each_service_exports_its_call_durations(self):
        lead = self.create_lead()
        _, _, converted = self.convert(lead.name)
        self.assertNotIsInstance(converted, grpc.RpcError)
        expected = {
            ("gateway", "gateway.call.duration", CONVERT_LEAD),
            ("gateway", "rpc.server.duration", CONVERT_LEAD),
            ("sales", "rpc.server.duration", CONVERT_LEAD),
            ("contacts", "rpc.server.duration", CREATE_CONTACT),
        }

        def seen():
            found = set()
            for service, metric in self.receiver.received_metrics():
                if metric.WhichOneof("data") != "histogram":
                    continue
                for point in metric.histogram.data_points:
                    labels = attributes(point.attributes)
                    if labels.get("rpc.grpc.status_code") == 0 and point.count > 0:
                        found.add((service, metric.name, labels.get("rpc.method")))
            return found

        poll(
            lambda: expected <= seen(),
            f"histograms {sorted(expected)}",
            lambda: f"missing {sorted(expected - seen())}; "
            f"received {sorted({(s, m.name) for s, m in self.receiver.received_metrics()})}",
        )


if __name__ == "__main__":
    unittest.main()
