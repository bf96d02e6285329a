"""Schemathesis hooks of scripts/fuzz-api (loaded through SCHEMATHESIS_HOOKS).

One check of our own, `refusals_change_nothing`: a request the API refuses
with a 4xx leaves the table exactly as it was. The table is read (a full
Scan of DynamoDB Local) before every call and again after every 4xx; with
one worker nothing else writes between the two. The one documented
exception is `409 settings_changed`: checkout releases a hold that the
resource's current settings no longer offer, and says so.
"""

import json
import os

import boto3
import schemathesis

TABLE = os.environ["SLOTGUARD_FUZZ_TABLE"]
_ddb = boto3.client("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
_before = {}

# Refusals that change state by design (README, API).
CHANGES_BY_DESIGN = {"settings_changed"}


def _scan():
    items, start = [], None
    while True:
        kwargs = {"TableName": TABLE, "ConsistentRead": True}
        if start:
            kwargs["ExclusiveStartKey"] = start
        page = _ddb.scan(**kwargs)
        items.extend(page["Items"])
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    return {json.dumps([item["pk"], item["sk"]]): item for item in items}


@schemathesis.hook
def before_call(context, case, kwargs):
    _before["items"] = _scan()


# `scripts/fuzz-api --self-test`: every refusal is followed by a write of
# our own, which refusals_change_nothing must report (a check that cannot
# fail proves nothing).
PLANT = os.environ.get("SLOTGUARD_FUZZ_PLANT") == "1"


@schemathesis.hook
def after_call(context, case, response):
    if PLANT and 400 <= response.status_code < 500:
        _ddb.put_item(
            TableName=TABLE,
            Item={"pk": {"S": "PLANTED"}, "sk": {"S": str(len(_before.get("items", {})))}},
        )


@schemathesis.check
def refusals_change_nothing(ctx, response, case):
    """A 4xx answer leaves every item of the table as it was."""
    if not 400 <= response.status_code < 500 or "items" not in _before:
        return None
    try:
        kind = json.loads(response.content).get("type")
    except (ValueError, AttributeError):
        kind = None
    if kind in CHANGES_BY_DESIGN:
        return None
    before, after = _before["items"], _scan()
    if before == after:
        return None
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    raise AssertionError(
        f"{response.status_code} {kind} changed the table: added {added[:5]}, removed {removed[:5]}, changed {changed[:5]}"
    )


# What the request parser answers when a body or header does not have the
# documented shape; never for a request the document calls valid.
SHAPE_REFUSALS = {(400, "invalid_json"), (400, "invalid_field"), (415, "unsupported_media_type")}


@schemathesis.check
def documented_shapes_are_accepted(ctx, response, case):
    """A request generated as valid against the document is never refused
    for its shape: the document is no looser than the parser.

    (Schemathesis' own positive_data_acceptance wants a 2xx for every such
    request, but a valid shape can still break a business rule the schema
    cannot state, such as a start in the past: 422 slot_in_past.)
    """
    meta = getattr(case, "meta", None)
    if meta is None or getattr(meta.generation.mode, "value", meta.generation.mode) != "positive":
        return None
    try:
        kind = json.loads(response.content).get("type")
    except (ValueError, AttributeError):
        return None
    if kind == "invalid_field" and "invalid type: floating point" in json.loads(response.content).get("detail", ""):
        # JSON Schema calls 30.0 an integer; the API does not (the document's
        # description says so): the one known difference.
        return None
    if (response.status_code, kind) in SHAPE_REFUSALS:
        raise AssertionError(f"a request valid by the document was refused as {response.status_code} {kind}")
    return None
