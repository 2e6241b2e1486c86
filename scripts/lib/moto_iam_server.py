"""moto_server.py with IAM enforced as AWS does it for DynamoDB, EventBridge and Secrets Manager.

Usage: INITIAL_NO_AUTH_ACTION_COUNT=N python moto_iam_server.py HOST PORT

moto's own enforcement (INITIAL_NO_AUTH_ACTION_COUNT) checks a request's action against the caller's
policies, but with the resource "*" for these services (so a statement naming a table's ARN never
matches) and with the API operation as the action (`dynamodb:TransactWriteItems`, which is no IAM
action). AWS checks each item of a transaction as its own action (`dynamodb:PutItem`,
`dynamodb:UpdateItem`, `dynamodb:DeleteItem`, `dynamodb:ConditionCheckItem`) on its own table, a query
of an index on the index's ARN, a publish on its bus's ARN, a secret read on the secret's ARN. This
launcher teaches moto those (action, resource) pairs, so that least-privilege policies can be tested:
every pair a request needs must be allowed, else the request is refused (AccessDeniedException).

With MOTO_IAM_AUDIT=PATH, every pair allowed is appended to PATH as `ACCESS_KEY_ID<TAB>ACTION<TAB>RESOURCE`:
the tests compare what a role's code used with what its policy grants.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import moto_server  # noqa: E402  (the serialised server this one extends)
from moto.core import authorization  # noqa: E402
from moto.dynamodb.responses import DynamoHandler  # noqa: E402
from moto.events.responses import EventsHandler  # noqa: E402
from moto.iam.access_control import IAMRequest  # noqa: E402
from moto.secretsmanager.models import secretsmanager_backends  # noqa: E402
from moto.secretsmanager.responses import SecretsManagerResponse  # noqa: E402
from moto import settings  # noqa: E402

# A transaction's items: the IAM action each one is authorised as.
TRANSACT_WRITE_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def body_of(handler):
    try:
        return json.loads(handler.raw_body or b"{}")
    except ValueError:
        return {}


def arn(handler, service, resource):
    return f"arn:aws:{service}:{handler.region}:{handler.current_account}:{resource}"


def table_arn(handler, name, index=None):
    base = name if name.startswith("arn:") else arn(handler, "dynamodb", f"table/{name}")
    return f"{base}/index/{index}" if index else base


def dynamodb_permissions(handler, operation, body):
    if operation == "TransactWriteItems":
        return [
            (f"dynamodb:{TRANSACT_WRITE_ACTIONS[kind]}", table_arn(handler, item[kind]["TableName"]))
            for item in body.get("TransactItems", [])
            for kind in item
        ]
    if operation == "TransactGetItems":
        return [
            ("dynamodb:GetItem", table_arn(handler, item["Get"]["TableName"]))
            for item in body.get("TransactItems", [])
        ]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [
            (f"dynamodb:{operation}", table_arn(handler, table))
            for table in body.get("RequestItems", {})
        ]
    table = body.get("TableName")
    if not table:
        return [(f"dynamodb:{operation}", "*")]
    return [(f"dynamodb:{operation}", table_arn(handler, table, body.get("IndexName")))]


def events_permissions(handler, operation, body):
    if operation != "PutEvents":
        return None
    buses = {entry.get("EventBusName") or "default" for entry in body.get("Entries", [])}
    return [
        ("events:PutEvents", bus if bus.startswith("arn:") else arn(handler, "events", f"event-bus/{bus}"))
        for bus in sorted(buses)
    ]


def secretsmanager_permissions(handler, operation, body):
    secret_id = body.get("SecretId")
    if not secret_id:
        return None
    secrets = secretsmanager_backends[handler.current_account][handler.region].secrets
    # A name or a partial ARN is authorised on the secret's full ARN, as AWS does.
    resource = secrets[secret_id].arn if secret_id in secrets else secret_id
    return [(f"secretsmanager:{operation}", resource)]


def audit(authorization_header, action, resource):
    path = os.environ.get("MOTO_IAM_AUDIT")
    if not path:
        return
    key_id = authorization_header.split("Credential=", 1)[1].split("/", 1)[0]
    with open(path, "a", encoding="utf-8") as log:
        log.write(f"{key_id}\t{action}\t{resource}\n")


def enforce(permissions_of):
    original = authorization.ActionAuthenticatorMixin._authenticate_and_authorize_normal_action

    def authorize(self, resource="*"):
        permissions = permissions_of(self, self._get_action(), body_of(self))
        counted = (
            authorization.ActionAuthenticatorMixin.request_count
            < settings.INITIAL_NO_AUTH_ACTION_COUNT
        )
        if permissions is None or counted:
            return original(self, resource)
        request = IAMRequest(
            account_id=self.current_account,
            method=self.method,
            path=self.raw_path,
            data=self.data,
            body=self.raw_body,
            headers=self.headers,
            action=self._get_action(),
        )
        request.check_signature()
        for action, needed in permissions:
            request._action = action
            request.check_action_permitted(needed)
            audit(self.headers["Authorization"], action, needed)

    return authorize


DynamoHandler._authenticate_and_authorize_normal_action = enforce(dynamodb_permissions)
EventsHandler._authenticate_and_authorize_normal_action = enforce(events_permissions)
SecretsManagerResponse._authenticate_and_authorize_normal_action = enforce(secretsmanager_permissions)

if __name__ == "__main__":
    moto_server.main()
