//! One history's world: its own table in DynamoDB Local, its own calendar
//! queue pair on the SQS server, its own in-process Stripe simulator (events
//! recorded, never posted: the harness delivers them), its own CalDAV
//! collections on Xandikos, and its resources: two rooms with booking types
//! that write to one collection, a room with a seated type beside a single
//! one, three members (each bookable alone, each with a collection of its
//! own) and two teams over them, a round-robin one and a collective one.

use super::faults::Faulty;
use crate::fakes::dynamo_wire::{Chaos, DynamoWire};
use aws_sdk_sqs::types::QueueAttributeName;
use chrono::{DateTime, Duration, DurationRound, Utc};
use reqwest::Method;
use serde_json::json;
use slotguard::adapters::caldav::{CalDavCalendar, CalDavConfig};
use slotguard::adapters::calendars::Calendars;
use slotguard::adapters::dynamo::DynamoStore;
use slotguard::adapters::sqs::{SqsCalendarQueue, SqsDeadLetters};
use slotguard::adapters::stripe::{StripePayments, WebhookVerifier};
use slotguard::api::auth::AdminAuth;
use slotguard::api::checkout::CheckoutUrls;
use slotguard::domain::{Resource, ResourceId};
use slotguard::ports::ResourceStore;
use slotguard_local::dev;
use std::sync::Mutex;

pub const WEBHOOK_SECRET: &str = "whsec_harness";
pub const STRIPE_KEY: &str = "sk_test_harness";
pub const ADMIN_TOKEN: &str = "harness-admin-token";
/// The calendar queue's visibility timeout as the harness plays it, in
/// harness minutes: a message received and never deleted comes back after
/// this (the template's 180 s).
pub const VISIBILITY_MINUTES: i64 = 3;

pub struct ResourceInfo {
    pub id: String,
    /// The candidate starts every reserve and reschedule picks from.
    pub slots: Vec<DateTime<Utc>>,
    /// The resource as first stored: its booking types, durations, buffers and policies.
    pub resource: Resource,
    /// The definition it was stored from (a `PUT /v1/resources/{id}` body).
    pub spec: serde_json::Value,
    /// The collection its bookings are written to (`None`: a team, whose
    /// bookings go to the hosting members' collections).
    pub calendar: Option<String>,
}

/// The resource a `PUT /v1/resources/{id}` body defines (the harness's own specs are valid).
pub fn resource_from_spec(id: &str, spec: &serde_json::Value) -> Resource {
    Resource::from_spec(ResourceId::parse(id).unwrap(), serde_json::from_value(spec.clone()).unwrap()).unwrap()
}

impl ResourceInfo {
    /// The team's members and whether it is collective (`None`: not a team).
    pub fn team(&self) -> Option<(Vec<String>, bool)> {
        let team = self.spec.get("team")?;
        let members = team["members"].as_array()?.iter().filter_map(|m| m.as_str().map(str::to_owned)).collect();
        Some((members, team["assignment"] == "collective"))
    }

    /// The latest instant any booking of the resource can block.
    pub fn last_blocked_end(&self) -> DateTime<Utc> {
        let longest = self
            .resource
            .booking_types
            .iter()
            .flat_map(|t| t.durations.iter().map(move |d| d.minutes + t.buffer_after_minutes))
            .max()
            .unwrap_or(0);
        self.slots.iter().max().copied().unwrap() + Duration::minutes(i64::from(longest))
    }
}

pub struct World {
    /// The store the handlers use: its port calls pass the fault layer, and
    /// its requests reach DynamoDB Local through [`Self::wire`].
    pub store: Faulty<DynamoStore>,
    /// The same table reached directly: what the checks read.
    pub raw_store: DynamoStore,
    /// DynamoDB's own failures on the wire (conflicts, lost answers,
    /// throttling, unprocessed keys), drawn from the seed during the plan.
    pub wire: DynamoWire,
    pub payments: Faulty<StripePayments>,
    pub queue: Faulty<SqsCalendarQueue>,
    pub raw_queue: SqsCalendarQueue,
    pub dead_letters: Faulty<SqsDeadLetters>,
    pub dlq_url: String,
    pub calendar: Faulty<Calendars>,
    pub raw_calendar: Calendars,
    pub verifier: WebhookVerifier,
    pub admin: AdminAuth,
    pub urls: CheckoutUrls,
    /// The Stripe simulator's base URL.
    pub sim: String,
    pub http: reqwest::Client,
    /// Every collection the history made: the rooms' and each member's.
    pub collections: Vec<String>,
    pub resources: Vec<ResourceInfo>,
    /// The simulator's clock offset as started: its now is the harness's t0.
    pub sim_offset: i64,
    sim_shutdown: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

/// Whether histories meet DynamoDB's wire faults (`SLOTGUARD_HARNESS_WIRE=0`
/// turns them off, to tell a port-level finding from a wire-level one).
fn wire_faults_on() -> bool {
    std::env::var("SLOTGUARD_HARNESS_WIRE").map_or(true, |v| v != "0")
}

fn stack_url(var: &str) -> String {
    crate::helpers::init_logs();
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the integration tests with scripts/test, which starts the local stack")
    })
}

/// Where the harness clock starts: the next whole minute. Every time the
/// handlers see is this plus whole minutes, so holds and sessions expire on
/// whole minutes and the simulator (whose clock runs a few seconds ahead of
/// the harness's between syncs) agrees with the handlers on what expired.
pub fn start_of_time() -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::minutes(1)).unwrap() + Duration::minutes(1)
}

impl World {
    pub async fn new(seed: u64, t0: DateTime<Utc>) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x5107_6a2d);
        let tag = format!("h{seed}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);

        let ddb = dev::dynamodb_client(&stack_url("SLOTGUARD_TEST_DYNAMODB_URL"));
        dev::ensure_table(&ddb, &tag).await.expect("create the history's table");
        let raw_store = DynamoStore::new(ddb, tag.clone());
        let wire = DynamoWire::start(&stack_url("SLOTGUARD_TEST_DYNAMODB_URL")).await;
        if wire_faults_on() {
            wire.chaos(Chaos::moderate(), seed ^ 0x3a1e_57d0);
        }
        let wired_store = DynamoStore::new(dev::dynamodb_client(&wire.url), tag.clone());

        let sqs = dev::sqs_client(&stack_url("SLOTGUARD_TEST_SQS_URL"));
        // The harness plays the visibility timeout on its own clock (see
        // VISIBILITY_MINUTES), so the queue's own is long enough never to fire.
        let (queue_url, dlq_url) =
            dev::create_calendar_queues(&sqs, &tag, 43_200).await.expect("create the history's queues");
        let raw_queue = SqsCalendarQueue::new(sqs.clone(), queue_url);

        let http = reqwest::Client::builder().pool_max_idle_per_host(16).build().unwrap();
        // The rooms share one collection; each member has its own.
        let caldav_base = stack_url("SLOTGUARD_TEST_CALDAV_URL");
        let collections: Vec<String> = ["", "-m1", "-m2", "-m3"]
            .iter()
            .map(|suffix| format!("{caldav_base}/user/calendars/{tag}{suffix}/"))
            .collect();
        for collection in &collections {
            let made = http.request(Method::from_bytes(b"MKCALENDAR").unwrap(), collection).send().await.unwrap();
            assert_eq!(made.status().as_u16(), 201, "MKCALENDAR {collection}");
        }
        let collection = collections[0].clone();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        // The simulator's clock starts on the harness's (never behind it).
        let sim_offset = t0.timestamp() - Utc::now().timestamp();
        let config = stripe_sim::SimConfig {
            webhook_url: None,
            webhook_secret: WEBHOOK_SECRET.into(),
            clock_offset_secs: sim_offset,
            ..stripe_sim::SimConfig::default()
        };
        tokio::spawn(stripe_sim::serve(listener, config, async move {
            let _ = rx.await;
        }));

        // Two rooms, open around the clock, with booking types of several
        // durations and buffers, a handful of candidate starts each within a
        // few hours of one day 20-40 days ahead, both writing to the same
        // collection. The candidates are chosen so that bookings of different
        // types overlap often and touch exactly (blocked intervals sharing an
        // end) sometimes:
        //
        //   ra  talk  30 min 25.00 | 60 min 40.00 EUR, 15 min buffer after, starts every 30 min
        //       deep  45 | 60 min 35.00 EUR each, 10 min buffer before, starts every 15 min
        //   rb  long  90 min 40.00 USD, starts every 30 min, at most 2 a day
        //
        // ra's candidates T, T+15, T+30, T+60, T+90: deep 45 at T+15 blocks
        // [T+5, T+60) and talk at T+60 blocks from T+60 (touching); talk 30 at
        // T+15 is off its grid. rb's T, T+30, T+90, T+180: T and T+90 touch,
        // T+30 overlaps both, and a third booking on one day is refused.
        let day = (t0 + Duration::days(20 + rng.i64(0..20))).duration_trunc(Duration::days(1)).unwrap();
        let first = day + Duration::hours(rng.i64(0..22));
        // Cancellation and reschedule cutoffs a few hours or days after t0, so
        // that the plan's clock jumps cross them: customers then cancel late
        // (a partial refund, nothing, or refused) or can no longer move.
        let lead_hours = (first - t0).num_hours();
        let cutoff = |rng: &mut fastrand::Rng| -> u32 {
            let after_t0 = [1, 3, 6, 30, 50][rng.usize(0..5)];
            u32::try_from(lead_hours - after_t0).unwrap()
        };
        let (talk_cancel, talk_move, deep_cancel, deep_move, long_cancel) =
            (cutoff(&mut rng), cutoff(&mut rng), cutoff(&mut rng), cutoff(&mut rng), cutoff(&mut rng));
        let deep_movable = rng.u32(0..4) > 0;
        let at =
            |minutes: &[i64]| -> Vec<DateTime<Utc>> { minutes.iter().map(|m| first + Duration::minutes(*m)).collect() };
        let ra_types = json!([
            {
                "id": "talk",
                "durations": [
                    { "minutes": 30, "price": { "amount": 2500, "currency": "eur" } },
                    { "minutes": 60, "price": { "amount": 4000, "currency": "eur" } }
                ],
                "buffer_after_minutes": 15,
                "cancellation": { "free_until_hours": talk_cancel, "late": { "refund": { "percent": 50 } } },
                "reschedule": { "allowed": true, "until_hours": talk_move }
            },
            {
                "id": "deep",
                "durations": [
                    { "minutes": 45, "price": { "amount": 3500, "currency": "eur" } },
                    { "minutes": 60, "price": { "amount": 3500, "currency": "eur" } }
                ],
                "buffer_before_minutes": 10,
                "start_interval_minutes": 15,
                "cancellation": { "free_until_hours": deep_cancel, "late": "refuse" },
                "reschedule": { "allowed": deep_movable, "until_hours": deep_move }
            }
        ]);
        let rb_percent = [0, 33, 100][rng.usize(0..3)];
        let rb_types = json!([
            {
                "id": "long",
                "durations": [{ "minutes": 90, "price": { "amount": 4000, "currency": "usd" } }],
                "start_interval_minutes": 30,
                "max_per_day": 2,
                "cancellation": { "free_until_hours": long_cancel, "late": { "refund": { "percent": rb_percent } } }
            }
        ]);
        // A room with seats: `class` (3 seats of 60 min, 10 min buffer after,
        // starts every 30 min) beside `solo` (30 min) on the same cells. rs's
        // candidates T, T+30, T+60, T+90: class at T and T+30 are two groups
        // that overlap (each keeps the other out), class at T and T+60 touch
        // only through the buffer ([T, T+70) and [T+60, ...) overlap), solo
        // anywhere collides with a class group.
        let (class_cancel, solo_cancel) = (cutoff(&mut rng), cutoff(&mut rng));
        let class_percent = [0, 50, 100][rng.usize(0..3)];
        let rs_types = json!([
            {
                "id": "class",
                "durations": [{ "minutes": 60, "price": { "amount": 2000, "currency": "eur" } }],
                "buffer_after_minutes": 10,
                "seats": 3,
                "cancellation": { "free_until_hours": class_cancel, "late": { "refund": { "percent": class_percent } } },
                // Allowed, yet a seat is never moved (409 not_reschedulable).
                "reschedule": { "allowed": true, "until_hours": 0 }
            },
            {
                "id": "solo",
                "durations": [{ "minutes": 30, "price": { "amount": 1500, "currency": "eur" } }],
                "cancellation": { "free_until_hours": solo_cancel, "late": "refuse" },
                "reschedule": { "allowed": true, "until_hours": 0 }
            }
        ]);
        // Members: each bookable alone (`one`, 30 min); the teams' `meet`
        // (30 | 60 min) books one of them (rr) or m1 and m2 together (co).
        let member_types = json!([
            {
                "id": "one",
                "durations": [{ "minutes": 30, "price": { "amount": 1000, "currency": "usd" } }],
                "cancellation": { "free_until_hours": cutoff(&mut rng), "late": { "refund": { "percent": 50 } } },
                "reschedule": { "allowed": true, "until_hours": 0 }
            }
        ]);
        let team_types = |rng: &mut fastrand::Rng| {
            json!([
                {
                    "id": "meet",
                    "durations": [
                        { "minutes": 30, "price": { "amount": 3000, "currency": "usd" } },
                        { "minutes": 60, "price": { "amount": 5000, "currency": "usd" } }
                    ],
                    "cancellation": { "free_until_hours": cutoff(rng), "late": { "refund": { "percent": 50 } } },
                    "reschedule": { "allowed": true, "until_hours": cutoff(rng) }
                }
            ])
        };
        let (rr_types, co_types) = (team_types(&mut rng), team_types(&mut rng));
        let team_slots = at(&[0, 30, 60]);
        type Def<'a> = (&'a str, serde_json::Value, Vec<DateTime<Utc>>, Option<String>, Option<serde_json::Value>);
        let defs: Vec<Def> = vec![
            ("ra", ra_types, at(&[0, 15, 30, 60, 90]), Some(collection.clone()), None),
            ("rb", rb_types, at(&[0, 30, 90, 180]), Some(collection.clone()), None),
            ("rs", rs_types, at(&[0, 30, 60, 90]), Some(collection.clone()), None),
            ("m1", member_types.clone(), team_slots.clone(), Some(collections[1].clone()), None),
            ("m2", member_types.clone(), team_slots.clone(), Some(collections[2].clone()), None),
            ("m3", member_types, team_slots.clone(), Some(collections[3].clone()), None),
            (
                "rr",
                rr_types,
                team_slots.clone(),
                None,
                Some(json!({ "members": ["m1", "m2", "m3"], "assignment": "round_robin" })),
            ),
            ("co", co_types, team_slots, None, Some(json!({ "members": ["m1", "m2"], "assignment": "collective" }))),
        ];
        let mut resources = Vec::new();
        for (id, types, starts, calendar, team) in defs {
            let mut spec = json!({
                "name": format!("Room {id}"),
                "timezone": "UTC",
                "booking_types": types,
                "weekly_hours": {
                    "mon": [{"start": "00:00", "end": "24:00"}], "tue": [{"start": "00:00", "end": "24:00"}],
                    "wed": [{"start": "00:00", "end": "24:00"}], "thu": [{"start": "00:00", "end": "24:00"}],
                    "fri": [{"start": "00:00", "end": "24:00"}], "sat": [{"start": "00:00", "end": "24:00"}],
                    "sun": [{"start": "00:00", "end": "24:00"}]
                },
            });
            if let Some(url) = &calendar {
                spec["calendar"] = json!({ "type": "caldav", "url": url });
            }
            if let Some(team) = team {
                spec["team"] = team;
            }
            let resource = resource_from_spec(id, &spec);
            raw_store.put_resource(&resource).await.expect("put a resource");
            resources.push(ResourceInfo { id: id.into(), slots: starts, resource, spec, calendar });
        }

        let caldav = CalDavConfig::default()
            .with_timeout(std::time::Duration::from_secs(5))
            .with_outbound(slotguard::adapters::outbound::OutboundPolicy::local());
        let caldav = CalDavCalendar::new(caldav).expect("a CalDAV client");
        let raw_calendar = Calendars::new(caldav, None);
        World {
            store: Faulty(wired_store),
            raw_store,
            wire,
            payments: Faulty(StripePayments::new(STRIPE_KEY, Some(&sim)).expect("a Stripe client")),
            queue: Faulty(raw_queue.clone()),
            raw_queue,
            dead_letters: Faulty(SqsDeadLetters::new(sqs, dlq_url.clone())),
            dlq_url,
            calendar: Faulty(raw_calendar.clone()),
            raw_calendar,
            verifier: WebhookVerifier::new(WEBHOOK_SECRET),
            admin: AdminAuth::Token(ADMIN_TOKEN.into()),
            urls: CheckoutUrls {
                success_url: "https://shop.example/booked/{RESERVATION_ID}".into(),
                cancel_url: "https://shop.example/cancelled".into(),
            },
            sim,
            http,
            collections,
            resources,
            sim_offset,
            sim_shutdown: Mutex::new(Some(tx)),
        }
    }

    pub fn sqs(&self) -> &aws_sdk_sqs::Client {
        self.raw_queue.client()
    }

    /// Messages on the calendar queue, visible or in flight.
    pub async fn queue_depth(&self) -> usize {
        self.depth(self.raw_queue.queue_url()).await
    }

    /// Messages on the dead-letter queue, visible or in flight.
    pub async fn dlq_depth(&self) -> usize {
        self.depth(&self.dlq_url).await
    }

    async fn depth(&self, url: &str) -> usize {
        let attrs = self
            .sqs()
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .expect("queue attributes");
        let a = attrs.attributes().cloned().unwrap_or_default();
        let n = |k| a.get(&k).and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
        n(QueueAttributeName::ApproximateNumberOfMessages)
            + n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
    }

    /// Removes what the history created on the shared servers.
    pub async fn tear_down(&self) {
        if let Some(tx) = self.sim_shutdown.lock().unwrap().take() {
            let _ = tx.send(());
        }
        let _ = self.raw_store.client().delete_table().table_name(self.raw_store.table()).send().await;
        let _ = self.sqs().delete_queue().queue_url(self.raw_queue.queue_url()).send().await;
        let _ = self.sqs().delete_queue().queue_url(&self.dlq_url).send().await;
        for collection in &self.collections {
            let _ = self.http.delete(collection).send().await;
        }
    }
}
