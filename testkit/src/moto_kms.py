# Talks to a moto server with boto3 (AWS's own SDK for Python, an implementation independent of
# cip's): `python -c "$(cat moto_kms.py)" ENDPOINT COMMAND [ARGS...]`, one JSON document on stdout.
#
# setup                      IAM users (unauthenticated: moto's INITIAL_NO_AUTH_ACTION_COUNT
#                            covers exactly these SETUP_ACTIONS requests): "signer" may use KMS,
#                            "nokms" may not. Prints both access keys.
# create-key ID SECRET USAGE SPEC         -> {"key_id"}
# alias ID SECRET ALIAS KEY_ID            -> {}
# public-key ID SECRET KEY_ID             -> {"der_b64"}
# sign ID SECRET KEY_ID MESSAGE_B64       -> {"signature_b64"}  (ECDSA_SHA_256 over the SHA-256
#                                            of the message: the signature cosign's awskms signer
#                                            gets by sending the digest with MessageType DIGEST;
#                                            moto implements only RAW, which hashes the message
#                                            itself, so RAW is sent here)
import base64
import json
import sys

import boto3
from botocore.config import Config

REGION = "us-east-1"
endpoint, command, args = sys.argv[1], sys.argv[2], sys.argv[3:]
config = Config(retries={"max_attempts": 1})


def client(service, key_id="setup", secret="setup"):
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=config,
    )


out = {}
if command == "setup":
    iam = client("iam")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}],
    }
    for user in ("signer", "nokms"):
        iam.create_user(UserName=user)
    iam.put_user_policy(UserName="signer", PolicyName="kms", PolicyDocument=json.dumps(policy))
    for user in ("signer", "nokms"):
        key = iam.create_access_key(UserName=user)["AccessKey"]
        out[user] = {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
else:
    kms = client("kms", args[0], args[1])
    rest = args[2:]
    if command == "create-key":
        meta = kms.create_key(KeyUsage=rest[0], KeySpec=rest[1])["KeyMetadata"]
        out = {"key_id": meta["KeyId"]}
    elif command == "alias":
        kms.create_alias(AliasName=rest[0], TargetKeyId=rest[1])
    elif command == "public-key":
        der = kms.get_public_key(KeyId=rest[0])["PublicKey"]
        out = {"der_b64": base64.b64encode(der).decode()}
    elif command == "sign":
        signature = kms.sign(
            KeyId=rest[0],
            Message=base64.b64decode(rest[1]),
            MessageType="RAW",
            SigningAlgorithm="ECDSA_SHA_256",
        )["Signature"]
        out = {"signature_b64": base64.b64encode(signature).decode()}
    else:
        sys.exit(f"unknown command {command}")
json.dump(out, sys.stdout)
