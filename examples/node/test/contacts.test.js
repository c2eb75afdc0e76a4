// Drives the client against a running suite (examples/run.sh starts one and
// sets CRM_GATEWAY_ADDR and CRM_AUTH__HS256_SECRET). Each run calls as a
// tenant of its own, so it sees only the contacts it made.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import path from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { devToken } from "../../dev-token.mjs";
import { connect, fieldViolations, grpc } from "../crm.js";

const { CRM_GATEWAY_ADDR: address, CRM_AUTH__HS256_SECRET: secret } = process.env;
assert.ok(address && secret, "CRM_GATEWAY_ADDR and CRM_AUTH__HS256_SECRET must be set: run examples/run.sh");

const tenant = `node-${randomUUID()}`;
const token = devToken({ secret, tenant, roles: ["admin"], subject: "node-test" });
const contacts = connect(address, token);
after(() => contacts.close());

test("a created contact comes back in the list", async () => {
  const created = await contacts.createContact({
    given_name: "Grace",
    family_name: "Hopper",
    emails: [{ address: "grace@example.com" }],
  });
  assert.match(created.name, /^contacts\//);
  assert.equal(created.display_name, "Grace Hopper");

  const { contacts: listed } = await contacts.listContacts();
  const found = listed.find((contact) => contact.name === created.name);
  assert.ok(found, `${created.name} not among ${listed.map((c) => c.name)}`);
  assert.equal(found.emails[0].address, "grace@example.com");
});

test("retrying a create with the same request_id creates nothing new", async () => {
  const requestId = randomUUID();
  const first = await contacts.createContact({ given_name: "Once" }, requestId);
  const again = await contacts.createContact({ given_name: "Once" }, requestId);
  assert.equal(again.name, first.name);
});

test("a bad email is INVALID_ARGUMENT naming the field", async () => {
  const error = await contacts.createContact({ emails: [{ address: "not-an-email" }] }).then(
    () => assert.fail("the server accepted a bad email"),
    (error) => error,
  );
  assert.equal(error.code, grpc.status.INVALID_ARGUMENT);
  const fields = fieldViolations(error).map((violation) => violation.field);
  assert.deepEqual(fields, ["contact.emails[0].address"]);
});

test("a token the gateway cannot verify is UNAUTHENTICATED", async () => {
  const anonymous = connect(address, "not-a-token");
  try {
    await assert.rejects(anonymous.listContacts(), { code: grpc.status.UNAUTHENTICATED });
  } finally {
    anonymous.close();
  }
});

test("main.js runs end to end and prints the field violation", async () => {
  const main = path.join(path.dirname(fileURLToPath(import.meta.url)), "../main.js");
  const { stdout } = await promisify(execFile)(process.execPath, [main], {
    env: { ...process.env, CRM_TOKEN: token },
  });
  assert.match(stdout, /^created contacts\/\S+ \(Ada Lovelace\)$/m);
  assert.match(stdout, /^listed {2}contacts\/\S+ Ada Lovelace ada@example.com$/m);
  assert.match(stdout, /^ {2}contact\.emails\[0\]\.address: /m);
});
