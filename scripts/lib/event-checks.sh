# Every events/ file, sent to its function, and what the answer must be: one
# list for both ways of invoking the functions as Lambda does,
# scripts/invoke-functions (cargo lambda) and scripts/sam-local (sam local
# invoke). Source it, then call run_event_checks; it adds to `passed` and
# `failed`. The caller defines
#   invoke_function FUNCTION EVENT_FILE   prints the function's response (FUNCTION
#                                         is the binary's name, as in functions/)
# and sets SIM (the Stripe simulator's URL), SECRET (the webhook signing secret
# the functions hold), STATE (a directory for signed events), BIN (the debug
# binaries) and SLOTGUARD_STRIPE_SECRET_KEY.

# check FUNCTION EVENT_FILE PYTHON_CONDITION — the condition sees `r` (the
# function's response) and, for HTTP functions, `status` and `body`.
check() {
  local fn="$1" event="$2" condition="$3" out
  if ! out="$(invoke_function "$fn" "$event" 2>&1)"; then
    echo "FAIL $fn < $event: invoke failed: $out"; failed=$((failed + 1)); return
  fi
  if python3 - "$out" "$condition" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
status = r.get("statusCode") if isinstance(r, dict) else None
body = json.loads(r["body"]) if isinstance(r, dict) and r.get("body") else None
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
  then
    echo "ok   $fn < $event"; passed=$((passed + 1))
  else
    echo "FAIL $fn < $event: $condition; got $out"; failed=$((failed + 1))
  fi
}

run_event_checks() {
  local rid=rsv_demo_20300107T080000_0123456789abcdef0123456789abcdef session paid pi refunds

  # A real paid session at the simulator for the sample events to be about, so
  # the refund they lead to is of a payment Stripe knows.
  session="$(curl -sf -u "$SLOTGUARD_STRIPE_SECRET_KEY:" "$SIM/v1/checkout/sessions" -d mode=payment \
    -d 'line_items[0][price_data][currency]=eur' -d 'line_items[0][price_data][unit_amount]=4500' \
    -d 'line_items[0][price_data][product_data][name]=Demo coaching call' -d 'line_items[0][quantity]=1' \
    -d "client_reference_id=$rid" -d customer_email=ada@example.com -d "metadata[reservation_id]=$rid" \
    -d "expires_at=$(( $(date +%s) + 3600 ))" -d success_url=https://shop.example/booked \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
  paid="$(curl -sf -X POST "$SIM/_sim/checkout/sessions/$session/complete?deliveries=0")"
  pi="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["payment_intent"])' "$paid")"

  signed() { # a sample Stripe event about that session, wrapped and signed now
    local out="$STATE/signed-$(basename "$1")"
    sed -e "s/cs_test_a1b2c3/$session/" -e "s/pi_3Example/$pi/" "$1" > "$out.body"
    "$BIN"/slotguard sign-event "$out.body" "$SECRET" > "$out"
    echo "$out"
  }

  check put-resource events/apigw-put-resource.json 'status == 200 and body["id"] == "demo"'
  check availability events/apigw-availability.json 'status == 200 and len(body["slots"]) == 14'
  check reserve events/apigw-reserve.json 'status == 201 and body["status"] == "held"'
  check reserve events/apigw-reserve.json 'status == 201 and r["headers"].get("idempotent-replayed") == "true"'
  check reservation-status events/apigw-reservation-status.json 'status == 404 and body["type"] == "reservation_not_found"'
  # The sample session names reservation $rid but was made at Stripe, not by
  # slotguard's checkout (and the reserve above holds its 09:00 anyway): a paid
  # session that is not a reservation's own is refunded, once, and changes
  # nothing else; its later events find its outcome recorded.
  check stripe-webhook "$(signed events/stripe/checkout.session.completed.json)" 'status == 200 and body["outcome"] == "refunded"'
  check stripe-webhook "$(signed events/stripe/checkout.session.completed.json)" 'status == 200 and body["outcome"] == "refunded"'
  check stripe-webhook "$(signed events/stripe/checkout.session.async_payment_succeeded.json)" 'status == 200 and body["outcome"] == "refunded"'
  check stripe-webhook "$(signed events/stripe/checkout.session.completed.unpaid.json)" 'status == 200 and body["outcome"] == "ignored_not_own_session"'
  check stripe-webhook "$(signed events/stripe/checkout.session.async_payment_failed.json)" 'status == 200 and body["outcome"] == "already_settled"'
  check stripe-webhook "$(signed events/stripe/checkout.session.expired.json)" 'status == 200 and body["outcome"] == "already_settled"'
  check stripe-webhook events/apigw-stripe-webhook.json 'status == 400 and body["type"] == "invalid_signature"'
  check reservation-status events/apigw-reservation-status.json 'status == 404 and body["type"] == "reservation_not_found"'
  check checkout events/apigw-checkout.json 'status == 404 and body["type"] == "reservation_not_found"'
  check cancel events/apigw-cancel.json 'status == 404 and body["type"] == "booking_not_found"'
  check availability events/apigw-resource.json 'status == 200 and body["booking_types"][0]["id"] == "default"'
  check put-resource events/apigw-admin-bookings.json 'status == 200 and isinstance(body["bookings"], list)'
  check cancel events/apigw-reschedule.json 'status == 404 and body["type"] == "booking_not_found"'
  check calendar-writer events/sqs-calendar-jobs.json 'r == {"batchItemFailures": []}'
  check reconcile events/schedule-reconcile.json 'r["resources"] == 0 and r["missing"] == [] and r["errors"] == []'
  check busy-refresh events/schedule-busy-refresh.json 'r["resources"] == 0 and r["refreshed"] == [] and r["errors"] == []'
  # The simulator never delivered its own `completed` of the session
  # (deliveries=0): the catch-up reads it from GET /v1/events and settles it
  # as the webhook would. Its outcome is recorded already (the signed samples
  # above), so it refunds nothing more (the refund count below); run twice,
  # the second run skips it.
  check catch-up events/schedule-catch-up.json 'r["events_read"] == 1 and r["settled"] == 1 and r["failed"] == 0 and r["cursor_moved"] and r["unsettled_paid_sessions"] == []'
  check catch-up events/schedule-catch-up.json 'r["events_read"] == 1 and r["seen_before"] == 1 and r["settled"] == 0 and r["failed"] == 0'

  refunds="$(curl -s "$SIM/_sim/refunds")"
  if python3 -c 'import json,sys; r=json.loads(sys.argv[1])["refunds"]; sys.exit(0 if len(r) == 1 and r[0]["payment_intent"] == sys.argv[2] else 1)' "$refunds" "$pi"; then
    echo "ok   one refund at the simulator for the three paid events"; passed=$((passed + 1))
  else
    echo "FAIL expected exactly one refund, got $refunds"; failed=$((failed + 1))
  fi
}
