// A development token, as `make token` (crmctl token) makes it, for a suite
// run with CRM_AUTH__HS256_SECRET: an HS256 JWT with the claims the services
// read (sub, tenant, roles, iat, exp), without needing Rust. Production tokens
// come from the identity provider instead. The tests use it; so can you:
//   CRM_AUTH__HS256_SECRET=... node examples/dev-token.mjs acme admin ada
import { createHmac } from "node:crypto";
import { fileURLToPath } from "node:url";

export function devToken({ secret, tenant, roles, subject, ttlSeconds = 3600 }) {
  const b64 = (value) => Buffer.from(value).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const header = b64(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const claims = b64(JSON.stringify({ sub: subject, tenant, roles, iat: now, exp: now + ttlSeconds }));
  const signature = createHmac("sha256", secret).update(`${header}.${claims}`).digest("base64url");
  return `${header}.${claims}.${signature}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [tenant, roles, subject] = process.argv.slice(2);
  const secret = process.env.CRM_AUTH__HS256_SECRET;
  if (!tenant || !roles || !subject || !secret) {
    console.error("usage: CRM_AUTH__HS256_SECRET=... node dev-token.mjs <tenant> <role,role> <subject>");
    process.exit(2);
  }
  console.log(devToken({ secret, tenant, roles: roles.split(","), subject }));
}
