#!/usr/bin/env python3
"""Checks a cosign attestation envelope with securesystemslib, an implementation independent of
ours (testkit signs, cip verifies): the DSSE signature over the pre-authentication encoding with
the given public key or certificate, the payload type, and the in-toto statement's subject.

usage: check-dsse.py ENVELOPE.json KEY_OR_CERT.pem sha256:HEX
Prints the statement's predicateType and exits 0 when everything holds; exits 1 saying why not.
"""

import hashlib
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

IN_TOTO = "application/vnd.in-toto+json"


def main(envelope_path: str, key_path: str, digest: str) -> int:
    with open(envelope_path, "rb") as f:
        raw = f.read()
    envelope = Envelope.from_dict(json.loads(raw))
    with open(key_path, "rb") as f:
        pem = f.read()
    if b"CERTIFICATE" in pem:
        public_key = x509.load_pem_x509_certificate(pem).public_key()
    else:
        public_key = load_pem_public_key(pem)
    key = SSlibKey.from_crypto(public_key)
    # cosign writes an empty keyid; securesystemslib matches signatures to keys by keyid.
    keyids = list(envelope.signatures)
    keys = [SSlibKey(keyid, key.keytype, key.scheme, key.keyval) for keyid in keyids]
    try:
        envelope.verify(keys, 1)
    except Exception as error:  # securesystemslib raises VerificationError (or ValueError)
        print(f"signature: {error}")
        return 1
    if envelope.payload_type != IN_TOTO:
        print(f"payloadType {envelope.payload_type}")
        return 1
    statement = json.loads(envelope.payload)
    algorithm, value = digest.split(":", 1)
    if not any(s.get("digest", {}).get(algorithm) == value for s in statement.get("subject", [])):
        print(f"subject does not name {digest}")
        return 1
    print(statement["predicateType"], hashlib.sha256(raw).hexdigest())
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
