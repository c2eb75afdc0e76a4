// The client at work: creates a contact, lists the newest contacts, then
// sends a bad email address and prints what the server says is wrong.
//   CRM_GATEWAY_ADDR=127.0.0.1:50051 CRM_TOKEN=<jwt> node main.js
import { connect, fieldViolations, grpc } from "./crm.js";

const address = process.env.CRM_GATEWAY_ADDR ?? "127.0.0.1:50051";
const token = process.env.CRM_TOKEN;
if (!token) {
  console.error("CRM_TOKEN is not set: see README.md, 'Getting a token'");
  process.exit(2);
}
const contacts = connect(address, token, { tls: process.env.CRM_GATEWAY_TLS === "true" });

try {
  const created = await contacts.createContact({
    given_name: "Ada",
    family_name: "Lovelace",
    emails: [{ address: "ada@example.com" }],
  });
  console.log(`created ${created.name} (${created.display_name})`);

  const { contacts: newest } = await contacts.listContacts({ page_size: 10 });
  for (const contact of newest) {
    console.log(`listed  ${contact.name} ${contact.display_name} ${contact.emails[0]?.address ?? ""}`);
  }

  try {
    await contacts.createContact({ given_name: "Bad", emails: [{ address: "not-an-email" }] });
  } catch (error) {
    if (error.code !== grpc.status.INVALID_ARGUMENT) throw error;
    console.log(`refused INVALID_ARGUMENT: ${error.details}`);
    for (const { field, description } of fieldViolations(error)) {
      console.log(`  ${field}: ${description}`);
    }
  }
} finally {
  contacts.close();
}
