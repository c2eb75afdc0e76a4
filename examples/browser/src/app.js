// The page's behaviour: ContactsService over gRPC-Web (Connect's transport),
// with the bearer token from the form on every call.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import { ContactsService } from "../gen/crm/contacts/v1/contacts_pb.js";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb.js";

const $ = (id) => document.getElementById(id);

// Made again for every call, so that a changed URL or token takes effect.
function contactsClient() {
  const token = $("token").value.trim();
  const transport = createGrpcWebTransport({
    baseUrl: $("gateway").value.trim(),
    interceptors: [
      (next) => (request) => {
        request.header.set("authorization", `Bearer ${token}`);
        return next(request);
      },
    ],
  });
  return createClient(ContactsService, transport);
}

function show(message, { error = false, violations = [] } = {}) {
  $("status").textContent = message;
  $("status").className = error ? "error" : "";
  $("violations").replaceChildren(
    ...violations.map(({ field, description }) => item(`${field}: ${description}`, "violation")),
  );
}

function item(text, className) {
  const li = document.createElement("li");
  li.textContent = text;
  li.className = className;
  return li;
}

// A failed call's code and message, and the fields a google.rpc.BadRequest
// detail (sent in grpc-status-details-bin) names.
function showError(cause) {
  const error = ConnectError.from(cause);
  const violations = error.findDetails(BadRequestSchema).flatMap((detail) => detail.fieldViolations);
  show(`${Code[error.code]}: ${error.rawMessage}`, { error: true, violations });
}

async function listContacts() {
  try {
    const { contacts } = await contactsClient().listContacts({ pageSize: 50 });
    $("contacts").replaceChildren(
      ...contacts.map((c) => item(`${c.displayName} ${c.emails[0]?.address ?? ""}`.trim(), "contact")),
    );
    show(`${contacts.length} contact(s)`);
  } catch (cause) {
    showError(cause);
  }
}

async function createContact(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const email = form.get("email").trim();
  try {
    const created = await contactsClient().createContact({
      contact: {
        givenName: form.get("givenName"),
        familyName: form.get("familyName"),
        emails: email ? [{ address: email }] : [],
      },
    });
    event.target.reset();
    await listContacts();
    show(`created ${created.name}`);
  } catch (cause) {
    showError(cause);
  }
}

$("refresh").addEventListener("click", listContacts);
$("create").addEventListener("submit", createContact);
