"""Schemathesis hooks for bankgate: a token of the right audience on every generated request.

Loaded by `tests/schemathesis/run.sh` (SCHEMATHESIS_HOOKS=hooks). At import it registers, through
the operator's admin API, a platform (private_key_jwt, DPoP-bound tokens, as FAPI 2.0 asks), a
compliance client and a bank client (client_secret_basic, bearer tokens), walks the platform
through a consent at the sandbox bank (PAR with PKCE and a DPoP proof, the consent screen, the
bank's automatic approval, the code exchange) — two data consents and a payment consent (one
payment of 1.00 EUR, so that `POST /v1/payments` reaches its 201/202, 409 and 422 answers and not
only a scope refusal; a new one each time the tokens are taken again) — and takes each client's
token. `before_call` then
puts on each request the credentials its route asks for — with a fresh DPoP proof (`htm`, `htu`,
`iat`, `jti`, `ath`, the server's nonce) where the token is DPoP-bound, and a fresh client
assertion in the form of the OAuth endpoints — so that generated cases reach the handlers
instead of stopping at authentication. Tokens live 5 minutes; they are taken again after 4.
"""

import base64
import hashlib
import html
import json
import os
import re
import time
import uuid
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
import schemathesis
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

BASE = os.environ["BANKGATE_URL"].rstrip("/")
ADMIN_TOKEN = os.environ["BANKGATE_ADMIN_TOKEN"]
BANK = os.environ.get("BANKGATE_BANK", "demo-bank")
# Two consents: one reads accounts, balances and transactions, the other identity.
DATA_PURPOSE = ("fraud-alerts", ["accounts", "balances", "transactions"])
IDENTITY_PURPOSE = ("p2p-payments-payee-check", ["accounts", "identity"])
# One payment between friends at the (paying) sandbox bank, to a sandbox account.
PAYMENT_PURPOSE = "p2p-payment"
PAYEE_IBAN = "DE65999900000012345602"
REDIRECT_URI = "http://127.0.0.1/schemathesis/callback"
TOKEN_REFRESH_SECS = 240


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Key:
    """An ES256 key: signs compact JWS."""

    def __init__(self, kid=None):
        self.private = ec.generate_private_key(ec.SECP256R1())
        numbers = self.private.public_key().public_numbers()
        self.public_jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }
        self.kid = kid

    def sign(self, header: dict, claims: dict) -> str:
        signing_input = (
            b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        der = self.private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


class Platform:
    """The platform's side of the flow, as a FAPI 2.0 client library would play it."""

    def __init__(self):
        self.client_id = f"schemathesis-{uuid.uuid4().hex[:8]}"
        self.assertion_key = Key(kid="assertion-1")
        self.dpop_key = Key()
        self.nonce = None
        self.http = requests.Session()

    def assertion(self) -> dict:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": BASE,
            "iat": now,
            "exp": now + 50,
            "jti": str(uuid.uuid4()),
        }
        header = {"alg": "ES256", "typ": "JWT", "kid": self.assertion_key.kid}
        return {
            "client_id": self.client_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": self.assertion_key.sign(header, claims),
        }

    def proof(self, method: str, url: str, access_token=None) -> str:
        parts = urlsplit(url)
        claims = {
            "jti": str(uuid.uuid4()),
            "htm": method.upper(),
            "htu": f"{parts.scheme}://{parts.netloc}{parts.path}",
            "iat": int(time.time()),
        }
        if self.nonce:
            claims["nonce"] = self.nonce
        if access_token:
            claims["ath"] = b64url(hashlib.sha256(access_token.encode()).digest())
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.dpop_key.public_jwk}
        return self.dpop_key.sign(header, claims)

    def saw(self, response):
        """Keeps the server's latest DPoP nonce."""
        nonce = response.headers.get("DPoP-Nonce")
        if nonce:
            self.nonce = nonce

    def post_form(self, path: str, form: dict) -> requests.Response:
        """An OAuth endpoint call with a client assertion and a DPoP proof; once more with the
        server's nonce when it asks for one."""
        url = BASE + path
        for _ in range(2):
            response = self.http.post(
                url,
                data=dict(form, **self.assertion()),
                headers={"DPoP": self.proof("POST", url)},
                allow_redirects=False,
            )
            self.saw(response)
            if "use_dpop_nonce" not in response.text:
                return response
        return response

    def register(self):
        response = requests.post(
            BASE + "/admin/clients",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            json={
                "client_id": self.client_id,
                "name": "schemathesis platform",
                "redirect_uris": [REDIRECT_URI],
                "allowed_purposes": [DATA_PURPOSE[0], IDENTITY_PURPOSE[0], PAYMENT_PURPOSE],
                "jwks": {"keys": [dict(self.assertion_key.public_jwk, kid="assertion-1", alg="ES256", use="sig")]},
            },
        )
        assert response.status_code == 201, response.text
        self.registration = response.json()

    def connect(self, purpose, scopes) -> dict:
        """A data consent: PAR → consent screen → the bank's approval → code → DPoP-bound tokens."""
        return self.authorise(
            {
                "type": "account_information",
                "bank": BANK,
                "purpose": purpose,
                "scopes": scopes,
                "history_days": 0,
                "expires_in_days": 90,
                "user_ref": "u-schemathesis",
            }
        )

    def pay(self) -> dict:
        """A payment consent (the payment recorded and created at the bank, authorised there):
        its token pays once."""
        return self.authorise(
            {
                "type": "payment_initiation",
                "bank": BANK,
                "purpose": PAYMENT_PURPOSE,
                "instructed_amount": {"currency": "EUR", "amount": "1.00"},
                "creditor_account": {"iban": PAYEE_IBAN},
                "creditor_name": "Camille Martin",
                "remittance": "schemathesis",
                "user_ref": "u-schemathesis",
            }
        )

    def authorise(self, detail) -> dict:
        """PAR → consent screen → the bank's approval → code → DPoP-bound tokens."""
        verifier = b64url(os.urandom(32))
        challenge = b64url(hashlib.sha256(verifier.encode()).digest())
        state = b64url(os.urandom(16))
        pushed = self.post_form(
            "/oauth/par",
            {
                "response_type": "code",
                "redirect_uri": REDIRECT_URI,
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "authorization_details": json.dumps([detail]),
            },
        )
        assert pushed.status_code == 201, pushed.text
        request_uri = pushed.json()["request_uri"]
        screen = requests.get(
            BASE + "/oauth/authorize",
            params={"client_id": self.client_id, "request_uri": request_uri},
            allow_redirects=False,
        )
        assert screen.status_code == 200, screen.text

        def hidden(name):
            match = re.search(f'name="{name}" value="([^"]*)"', screen.text)
            assert match, f"no {name} on the consent screen"
            return html.unescape(match.group(1))

        decided = requests.post(
            BASE + "/oauth/authorize",
            data={"consent_id": hidden("consent_id"), "screen_token": hidden("screen_token"), "decision": "approve"},
            allow_redirects=False,
        )
        to_bank = urljoin(decided.url, decided.headers["Location"])
        at_bank = requests.get(to_bank, allow_redirects=False)
        callback = urljoin(to_bank, at_bank.headers["Location"])
        back = requests.get(callback, allow_redirects=False)
        redirect = urljoin(callback, back.headers["Location"])
        query = parse_qs(urlsplit(redirect).query)
        assert "code" in query, redirect
        tokens = self.post_form(
            "/oauth/token",
            {
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            },
        )
        assert tokens.status_code == 200, tokens.text
        return tokens.json()

    def refresh(self, refresh_token: str) -> dict:
        tokens = self.post_form("/oauth/token", {"grant_type": "refresh_token", "refresh_token": refresh_token})
        assert tokens.status_code == 200, tokens.text
        return tokens.json()

    def management_token(self) -> str:
        tokens = self.post_form("/oauth/token", {"grant_type": "client_credentials", "scope": "consents:manage"})
        assert tokens.status_code == 200, tokens.text
        return tokens.json()["access_token"]


def secret_client(client_id: str, role: str, scope: str, bank_id=None):
    """Registers a client_secret_basic client of `role`; a function giving a fresh bearer token."""
    body = {
        "client_id": client_id,
        "name": f"schemathesis {role}",
        "role": role,
        "token_endpoint_auth_method": "client_secret_basic",
        "dpop_bound_access_tokens": False,
    }
    if bank_id:
        body["bank_id"] = bank_id
    response = requests.post(BASE + "/admin/clients", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, json=body)
    assert response.status_code == 201, response.text
    secret = response.json()["client_secret"]

    def token():
        answer = requests.post(
            BASE + "/oauth/token",
            data={"grant_type": "client_credentials", "scope": scope},
            auth=(client_id, secret),
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["access_token"]

    return token


class Credentials:
    """Every audience's token, taken again before it expires."""

    def __init__(self):
        self.platform = Platform()
        self.platform.register()
        suffix = uuid.uuid4().hex[:8]
        self.compliance_token = secret_client(f"schemathesis-compliance-{suffix}", "compliance", "audit:read")
        self.bank_token = secret_client(f"schemathesis-bank-{suffix}", "bank", "adapter:manage", BANK)
        self.consents = [self.platform.connect(*DATA_PURPOSE), self.platform.connect(*IDENTITY_PURPOSE)]
        self.take()

    def take(self):
        if hasattr(self, "taken"):
            self.consents = [self.platform.refresh(consent["refresh_token"]) for consent in self.consents]
        self.taken = time.monotonic()
        self.data, self.identity = (consent["access_token"] for consent in self.consents)
        self.payment = self.platform.pay()["access_token"]
        self.management = self.platform.management_token()
        self.compliance = self.compliance_token()
        self.bank = self.bank_token()

    def fresh(self):
        if time.monotonic() - self.taken > TOKEN_REFRESH_SECS:
            self.take()
        return self


CREDENTIALS = Credentials()
FORM_ENDPOINTS = {"/oauth/par", "/oauth/token", "/oauth/revoke"}


def audience(path: str):
    """The token a route asks for: (kind, token) with kind `dpop`, `bearer` or None."""
    credentials = CREDENTIALS.fresh()
    if path.startswith(("/v1/identity", "/v1/payees")):
        return "dpop", credentials.identity
    if path.startswith("/v1/payments"):
        return "dpop", credentials.payment
    if path.startswith("/v1/accounts"):
        return "dpop", credentials.data
    if path.startswith(("/v1/consents", "/v1/webhooks", "/v1/payee-verifications")):
        return "dpop", credentials.management
    if path.startswith("/v1/audit"):
        return "bearer", credentials.compliance
    if path.startswith("/v1/banks/{bank_id}/"):
        return "bearer", credentials.bank
    if path.startswith("/admin/"):
        return "bearer", ADMIN_TOKEN
    if path.startswith("/register/"):
        return "bearer", credentials.platform.registration["registration_access_token"]
    return None, None


@schemathesis.hook
def before_call(context, case, kwargs):
    path = case.operation.path
    method = case.method.upper()
    headers = case.headers if case.headers is not None else {}
    platform = CREDENTIALS.platform
    kind, token = audience(path)
    if path == "/register/{client_id}" and method == "GET":
        # The platform reads its own registration (a PUT stays on a generated client id:
        # replacing the platform's keys would end its session).
        case.path_parameters = dict(case.path_parameters or {}, client_id=platform.client_id)
    if path == "/v1/banks/{bank_id}/consents/{consent_id}":
        case.path_parameters = dict(case.path_parameters or {}, bank_id=BANK)
    if path.startswith(("/v1/accounts", "/v1/identity")):
        # The user is present: generated cases do not spend the unattended budget.
        headers["X-User-Present"] = "true"
        headers["PSU-IP-Address"] = "192.0.2.10"
    url = BASE + case.formatted_path
    if kind == "dpop":
        headers["Authorization"] = f"DPoP {token}"
        headers["DPoP"] = platform.proof(method, url, token)
    elif kind == "bearer":
        headers["Authorization"] = f"Bearer {token}"
    if path in FORM_ENDPOINTS and isinstance(case.body, dict):
        # The platform authenticates; the rest of the form is what was generated.
        case.body = dict(case.body, **platform.assertion())
        headers["DPoP"] = platform.proof(method, url)
    case.headers = headers


@schemathesis.hook
def after_call(context, case, response):
    CREDENTIALS.platform.saw(response)
