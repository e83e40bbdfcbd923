#!/usr/bin/env python3
"""Verifies a sigstore bundle made by testkit with the PyPI `sigstore` package, offline.

    verify-bundle-sigstore-python.py TRUSTED_ROOT BUNDLE DIGEST (--identity ID --issuer URL | --key PEM)

An independent implementation of the bundle format (DSSE, Rekor v1 `dsse` entry, SET, inclusion
proof, checkpoint, Fulcio chain, SCT): our signer (testkit) and our verifier (cip) cannot share a
misunderstanding it does not have. The statement must be cosign's sign statement for DIGEST.
Exit status 0 and "verified" on success; 1 with sigstore's reason otherwise.
"""

import argparse
import json
import sys

from sigstore.models import Bundle, TrustedRoot
from sigstore.verify import Verifier, policy


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("trusted_root")
    parser.add_argument("bundle")
    parser.add_argument("digest")
    parser.add_argument("--identity")
    parser.add_argument("--issuer")
    args = parser.parse_args()

    verifier = Verifier(trusted_root=TrustedRoot.from_file(args.trusted_root))
    with open(args.bundle, "rb") as f:
        bundle = Bundle.from_json(f.read())
    try:
        payload_type, payload = verifier.verify_dsse(
            bundle, policy.Identity(identity=args.identity, issuer=args.issuer)
        )
    except Exception as error:  # sigstore raises VerificationError and friends
        print(f"not verified: {error}")
        return 1
    statement = json.loads(payload)
    algorithm, hex_digest = args.digest.split(":", 1)
    subjects = [s.get("digest", {}).get(algorithm) for s in statement.get("subject", [])]
    if payload_type != "application/vnd.in-toto+json" or hex_digest not in subjects:
        print(f"not verified: the statement does not name {args.digest}: {statement}")
        return 1
    print(f"verified {statement['predicateType']} for {args.digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
