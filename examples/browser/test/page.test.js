// Drives the page in Debian's chromium (headless) against a running suite:
// examples/run.sh starts one whose gateway allows CRM_PAGE_ORIGIN, and sets
// CRM_GATEWAY_ADDR and CRM_AUTH__HS256_SECRET. The page is served from its
// own origin, so every call is cross-origin and needs the gateway's CORS.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { after, before, describe, test } from "node:test";

import { chromium } from "playwright-core";

import { devToken } from "../../dev-token.mjs";
import { serve } from "../serve.js";

const { CRM_GATEWAY_ADDR, CRM_AUTH__HS256_SECRET: secret, CRM_PAGE_ORIGIN: allowedOrigin } = process.env;
assert.ok(
  CRM_GATEWAY_ADDR && secret && allowedOrigin,
  "CRM_GATEWAY_ADDR, CRM_AUTH__HS256_SECRET and CRM_PAGE_ORIGIN must be set: run examples/run.sh",
);
const gateway = `http://${CRM_GATEWAY_ADDR}`;
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const haveChromium = existsSync(CHROMIUM);

// Skipped on a developer's machine without chromium; under CI its absence
// fails, so that a green CI always means the page was tested.
test(`chromium is at ${CHROMIUM}`, { skip: !haveChromium && process.env.CI !== "true" }, () => {
  assert.ok(haveChromium, "CI=true and no chromium: apt-get install chromium, or set CHROMIUM_PATH");
});

// What the gateway answers a browser's preflight from `origin`.
async function preflight(origin) {
  return fetch(`${gateway}/crm.contacts.v1.ContactsService/ListContacts`, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization,content-type,x-grpc-web,x-user-agent",
    },
  });
}

describe("the gRPC-Web page", { skip: !haveChromium && `no chromium at ${CHROMIUM}` }, () => {
  let browser, allowed, other;
  const token = devToken({ secret, tenant: `browser-${randomUUID()}`, roles: ["admin"], subject: "browser-test" });

  before(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM });
    // The same page on two origins: the one the gateway allows, and any other.
    allowed = await serve(Number(new URL(allowedOrigin).port));
    other = await serve(0);
  });
  after(async () => {
    await browser?.close();
    allowed?.close();
    other?.close();
  });

  // A new page from `server`, its gateway URL and token filled in.
  async function openPage(server) {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    await page.fill("#gateway", gateway);
    await page.fill("#token", token);
    return page;
  }

  // Every request chromium sends, preflights included, which Playwright's own
  // request events leave out: the DevTools protocol reports them.
  async function recordRequests(page) {
    const requests = new Map();
    const cdp = await page.context().newCDPSession(page);
    cdp.on("Network.requestWillBeSent", ({ requestId, request, type }) =>
      requests.set(requestId, { method: request.method, url: request.url, type }),
    );
    cdp.on("Network.responseReceived", ({ requestId, response }) => {
      const seen = requests.get(requestId);
      if (seen) Object.assign(seen, { status: response.status, headers: response.headers });
    });
    await cdp.send("Network.enable");
    return requests;
  }

  test("creates a contact and sees it listed, after a CORS preflight", async () => {
    const page = await openPage(allowed);
    const requests = await recordRequests(page);

    await page.fill("[name=givenName]", "Katherine");
    await page.fill("[name=familyName]", "Johnson");
    await page.fill("[name=email]", "katherine@example.com");
    await page.click("#create button");

    await page.locator("#contacts li", { hasText: "Katherine Johnson katherine@example.com" }).waitFor();
    assert.match(await page.textContent("#status"), /^created contacts\//);

    const preflights = [...requests.values()].filter((r) => r.method === "OPTIONS");
    assert.ok(preflights.length > 0, `no preflight among ${JSON.stringify([...requests.values()])}`);
    for (const { url, status, headers } of preflights) {
      assert.ok(url.startsWith(`${gateway}/crm.contacts.v1.ContactsService/`), url);
      assert.ok(status >= 200 && status < 300, `preflight answered ${status}`);
      const lowered = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
      assert.equal(lowered["access-control-allow-origin"], allowedOrigin);
    }
    await page.close();
  });

  test("shows the field a bad email is refused for", async () => {
    const page = await openPage(allowed);
    await page.fill("[name=givenName]", "Bad");
    await page.fill("[name=email]", "not-an-email");
    await page.click("#create button");

    await page.locator("#status.error").waitFor();
    assert.match(await page.textContent("#status"), /^InvalidArgument: /);
    const violations = await page.locator("#violations li").allTextContents();
    assert.equal(violations.length, 1, violations.join("\n"));
    assert.match(violations[0], /^contact\.emails\[0\]\.address: /);
    await page.close();
  });

  test("a page on an origin the gateway does not allow is refused", async () => {
    const page = await openPage(other);
    await page.click("#refresh");
    await page.locator("#status.error").waitFor();
    assert.match(await page.textContent("#status"), /Failed to fetch/);
    assert.equal(await page.locator("#contacts li").count(), 0);

    // The browser refuses because the gateway's answer names no origin.
    const refused = await preflight(new URL(page.url()).origin);
    assert.equal(refused.headers.get("access-control-allow-origin"), null);
    const allowed = await preflight(allowedOrigin);
    assert.equal(allowed.headers.get("access-control-allow-origin"), allowedOrigin);
    await page.close();
  });
});
