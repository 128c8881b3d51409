// A messenger's webhook receiver for bankgate notifications: every delivery is a Security
// Event Token (RFC 8417) signed by the gateway; it is verified against the gateway's JWKS
// (ES256, typ secevent+jwt, iss the gateway, aud this platform's client id) before the
// messenger tells its user anything. Balance changes become "Balance of Main Account:
// 1,204.55 EUR (was 1,356.92)", new payments a line each, fraud signals a question.
//
// Environment: BANKGATE_URL (the gateway, whose /.well-known/jwks.json it trusts),
// MESSENGER_CLIENT_ID (its client id at the gateway, default demo-alerts), MESSENGER_LISTEN
// (default 127.0.0.1:8099; events are POSTed to /events).
import { createServer } from "node:http";
import { createRemoteJWKSet, jwtVerify } from "jose";

const gateway = process.env.BANKGATE_URL ?? "http://127.0.0.1:8181";
const clientId = process.env.MESSENGER_CLIENT_ID ?? "demo-alerts";
const [host, port] = (process.env.MESSENGER_LISTEN ?? "127.0.0.1:8099").split(":");
const keys = createRemoteJWKSet(new URL("/.well-known/jwks.json", gateway));
const EVENT_BASE = "https://bankgate.dev/events/";

// What the messenger showed its user last, per account: "1,356.92 EUR".
const shown = new Map();

function grouped(amount) {
  const negative = amount.startsWith("-");
  const [whole, fraction] = amount.replace(/^-/, "").split(".");
  const withCommas = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${negative ? "-" : ""}${withCommas}${fraction === undefined ? "" : "." + fraction}`;
}

function shownBalance(balances = []) {
  const balance = balances.find((b) => b.type === "interim_available") ?? balances[0];
  return balance && `${grouped(balance.amount)} ${balance.currency}`;
}

function tell(event, detail) {
  const account = detail.account?.display_name ?? "your account";
  switch (event) {
    case "balance.changed": {
      const now = shownBalance(detail.balances);
      if (!now) return;
      const was = shown.get(detail.account_id);
      shown.set(detail.account_id, now);
      console.log(`Balance of ${account}: ${now}${was ? ` (was ${was.split(" ")[0]})` : ""}`);
      return;
    }
    case "transactions.created":
      for (const t of detail.transactions ?? []) {
        console.log(`New on ${account}: ${grouped(t.amount)} ${t.currency} ${t.counterparty_name ?? ""} (${t.status})`);
      }
      return;
    case "fraud.signal": {
      const t = detail.transaction;
      const what = t
        ? `${grouped(t.amount.replace(/^-/, ""))} ${t.currency} to ${t.counterparty_name ?? "someone"}${t.counterparty_country ? ` (${t.counterparty_country})` : ""}`
        : `the balance of ${account}`;
      console.log(`Fraud alert (${detail.signal.id}): ${what}. ${detail.signal.title} — is this you?`);
      return;
    }
    default:
      console.log(`(${event} for consent ${detail.consent_id ?? "?"})`);
  }
}

createServer((request, response) => {
  let body = "";
  request.setEncoding("utf8");
  request.on("data", (chunk) => (body += chunk));
  request.on("end", async () => {
    if (request.method !== "POST" || request.url !== "/events") {
      response.writeHead(404).end();
      return;
    }
    try {
      const { payload } = await jwtVerify(body.trim(), keys, {
        issuer: gateway,
        audience: clientId,
        typ: "secevent+jwt",
        algorithms: ["ES256"],
      });
      for (const [uri, detail] of Object.entries(payload.events ?? {})) {
        tell(uri.startsWith(EVENT_BASE) ? uri.slice(EVENT_BASE.length) : uri, detail);
      }
      response.writeHead(202).end();
    } catch (error) {
      console.log(`(refused a delivery: ${error.code ?? error.message})`);
      response.writeHead(400).end();
    }
  });
}).listen(Number(port), host, () => console.error(`messenger listening on http://${host}:${port}/events`));
