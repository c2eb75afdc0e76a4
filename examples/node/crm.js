// A small client of the CRM's ContactsService through the gateway: the protos
// are loaded at run time from proto/ (no generated code), the bearer token
// goes with every call, and a failed call's google.rpc.BadRequest can be read.
import { randomUUID } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const PROTO_DIR = process.env.CRM_PROTO_DIR ?? path.join(here, "../../proto");
const RPC_PROTO_DIR = path.join(here, "../proto");

const definition = protoLoader.loadSync("crm/contacts/v1/contacts.proto", {
  includeDirs: [PROTO_DIR],
  // Field names as the proto spells them, which are also the names the
  // server's field violations use ("contact.given_name", not "givenName").
  keepCase: true,
  // Unset fields as their proto3 defaults ("" and []), as other languages see them.
  defaults: true,
  enums: String,
  longs: String,
  oneofs: true,
});
const { ContactsService } = grpc.loadPackageDefinition(definition).crm.contacts.v1;

const rpcTypes = new protobuf.Root().loadSync(
  ["google/rpc/status.proto", "google/rpc/error_details.proto"].map((file) => path.join(RPC_PROTO_DIR, file)),
  { keepCase: true },
);
const Status = rpcTypes.lookupType("google.rpc.Status");
const BadRequest = rpcTypes.lookupType("google.rpc.BadRequest");

/**
 * A ContactsService client for the gateway at `address` ("host:port"),
 * calling as the holder of `token`. Its methods return promises.
 */
export function connect(address, token, { tls = false, timeoutMs = 10_000 } = {}) {
  const client = new ContactsService(address, tls ? grpc.credentials.createSsl() : grpc.credentials.createInsecure());
  // Sent per call rather than as call credentials, which grpc-js refuses on
  // a plaintext channel (a gateway on localhost, or behind a TLS-ending proxy).
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  const call = (method, request) =>
    new Promise((resolve, reject) => {
      const deadline = Date.now() + timeoutMs;
      client[method](request, metadata, { deadline }, (error, response) => (error ? reject(error) : resolve(response)));
    });
  return {
    // The request_id makes a retry of the same create return the first
    // contact instead of making a second one.
    createContact: (contact, requestId = randomUUID()) => call("CreateContact", { contact, request_id: requestId }),
    listContacts: (request = {}) => call("ListContacts", request),
    close: () => client.close(),
  };
}

/**
 * The field violations (`{field, description}`) a failed call carries in its
 * google.rpc.Status details; empty when it carries none.
 */
export function fieldViolations(error) {
  const [details] = error.metadata?.get("grpc-status-details-bin") ?? [];
  if (!details) return [];
  return Status.decode(details)
    .details.filter((any) => any.type_url.endsWith("/google.rpc.BadRequest"))
    .flatMap((any) => BadRequest.decode(any.value).field_violations);
}

export { grpc };
