//! The release function binaries as Lambda runs them: each process started
//! with Lambda's environment and pointed at a [`RuntimeApi`] stand-in, timed
//! from spawn to its first `GET .../next` (init) and to its first answer
//! (first response), beside a hello-world `lambda_http` binary; then peak
//! memory after 200 invocations; and the binaries' sizes.

use super::runtime_api::{Reply, ReplyKind, RuntimeApi};
use super::stats::{median, ms, peak_rss_mib, ratio};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The hello-world binary every function is compared with.
pub const HELLO: &str = "hello-lambda";

/// Where a function's event comes from.
#[derive(Clone)]
enum Event {
    /// An `events/` file, sent as it is.
    File(PathBuf),
    /// A Stripe event body, wrapped in an API Gateway event and signed with
    /// the bench's webhook secret at the moment it is handed out.
    SignedWebhook(String),
}

/// One binary under test.
#[derive(Clone)]
pub struct Binary {
    pub name: String,
    path: PathBuf,
    event: Event,
    event_name: String,
    timeout_secs: i64,
    env: Vec<(String, String)>,
}

/// What the functions are pointed at.
pub struct Stack {
    pub dynamodb_url: String,
    pub sqs_url: String,
    pub queue_url: String,
    pub dlq_url: String,
    pub stripe_url: String,
    pub stripe_key: String,
    pub webhook_secret: String,
    /// A paid session at the simulator and its payment intent, for the
    /// webhook event to be about (so its refund is of a payment Stripe knows).
    pub paid_session: (String, String),
}

/// The function crates under `functions/`, sorted.
pub fn function_names(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("functions"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter(|e| e.path().join("Cargo.toml").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// An API Gateway HTTP API v2 event delivering `body` to `POST
/// /webhooks/stripe`, signed now (as `slotguard sign-event` makes it).
fn signed_webhook_event(body: &str, secret: &str) -> String {
    let now = chrono::Utc::now();
    let signature = slotguard::adapters::stripe::sign(body, secret, now.timestamp());
    serde_json::json!({
        "version": "2.0",
        "routeKey": "POST /webhooks/stripe",
        "rawPath": "/webhooks/stripe",
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json; charset=utf-8",
            "stripe-signature": signature,
            "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "host": "localhost"
        },
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": "localhost", "domainPrefix": "localhost",
            "http": { "method": "POST", "path": "/webhooks/stripe", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "Stripe/1.0" },
            "requestId": format!("bench-{}", now.timestamp_millis()), "routeKey": "POST /webhooks/stripe", "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(), "timeEpoch": now.timestamp_millis()
        },
        "body": body,
        "isBase64Encoded": false
    })
    .to_string()
}

impl Binary {
    /// The binary `name` in `bin_dir` with its sample event and the
    /// environment `template.yaml` gives it (secrets as plain variables, as
    /// locally); `None` for a function this bench has no event for.
    pub fn new(name: &str, bin_dir: &Path, root: &Path, stack: &Stack) -> Option<Self> {
        let events = root.join("events");
        let file = |f: &str| (Event::File(events.join(f)), f.to_owned());
        let secrets = [
            ("SLOTGUARD_STRIPE_SECRET_KEY", stack.stripe_key.clone()),
            ("SLOTGUARD_STRIPE_WEBHOOK_SECRET", stack.webhook_secret.clone()),
        ];
        let stripe_base = ("SLOTGUARD_STRIPE_API_BASE", stack.stripe_url.clone());
        let (event, more, timeout_secs): ((Event, String), Vec<(&str, String)>, i64) = match name {
            HELLO => (file("apigw-reservation-status.json"), vec![], 10),
            "availability" => (file("apigw-availability.json"), vec![], 10),
            "reserve" => (file("apigw-reserve.json"), vec![], 10),
            "reservation-status" => (file("apigw-reservation-status.json"), vec![], 10),
            "put-resource" => (file("apigw-put-resource.json"), vec![], 10),
            "checkout" => {
                let mut env = secrets.to_vec();
                env.push(stripe_base);
                env.push(("SLOTGUARD_CHECKOUT_SUCCESS_URL", "https://shop.example/booked/{RESERVATION_ID}".into()));
                env.push(("SLOTGUARD_CHECKOUT_CANCEL_URL", "https://shop.example/slots".into()));
                (file("apigw-checkout.json"), env, 10)
            }
            "cancel" => {
                let mut env = secrets.to_vec();
                env.push(stripe_base);
                (file("apigw-cancel.json"), env, 10)
            }
            "stripe-webhook" => {
                let path = events.join("stripe/checkout.session.completed.json");
                let (session, payment_intent) = &stack.paid_session;
                let body = std::fs::read_to_string(&path)
                    .ok()?
                    .replace("cs_test_a1b2c3", session)
                    .replace("pi_3Example", payment_intent);
                let mut env = secrets.to_vec();
                env.push(stripe_base);
                ((Event::SignedWebhook(body), "stripe/checkout.session.completed.json, signed".into()), env, 10)
            }
            "calendar-writer" => {
                let mut env = secrets.to_vec();
                env.push(("SLOTGUARD_CALENDAR_DLQ_URL", stack.dlq_url.clone()));
                env.push(("SLOTGUARD_MAX_RECEIVES", "5".into()));
                (file("sqs-calendar-jobs.json"), env, 30)
            }
            "reconcile" => {
                let mut env = secrets.to_vec();
                env.push(("SLOTGUARD_RECONCILE_DAYS", "30".into()));
                (file("schedule-reconcile.json"), env, 300)
            }
            "busy-refresh" => (file("schedule-busy-refresh.json"), secrets.to_vec(), 50),
            _ => return None,
        };
        let mut env: Vec<(String, String)> = vec![
            ("AWS_LAMBDA_FUNCTION_NAME".into(), name.into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), "256".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME".into(), format!("/aws/lambda/{name}")),
            ("AWS_LAMBDA_LOG_STREAM_NAME".into(), "bench".into()),
            ("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()),
            ("AWS_LAMBDA_LOG_LEVEL".into(), "INFO".into()),
            ("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "on-demand".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID".into(), "local".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "local".into()),
            ("AWS_ENDPOINT_URL_DYNAMODB".into(), stack.dynamodb_url.clone()),
            ("AWS_ENDPOINT_URL_SQS".into(), stack.sqs_url.clone()),
            ("TZ".into(), ":UTC".into()),
            ("LANG".into(), "en_US.UTF-8".into()),
            ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
            // template.yaml's Globals.
            ("SLOTGUARD_CALENDAR_QUEUE_URL".into(), stack.queue_url.clone()),
            ("SLOTGUARD_ADMIN_AUTH".into(), "iam".into()),
        ];
        env.extend(more.into_iter().map(|(k, v)| (k.to_owned(), v)));
        let ((event, event_name), path) = (event, bin_dir.join(name));
        Some(Self { name: name.into(), path, event, event_name, timeout_secs, env })
    }

    fn event_bytes(&self, webhook_secret: &str) -> Vec<u8> {
        match &self.event {
            Event::File(path) => std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
            Event::SignedWebhook(body) => signed_webhook_event(body, webhook_secret).into_bytes(),
        }
    }
}

/// One process of a binary, serving its runtime API stand-in.
struct Process {
    child: Child,
    api: RuntimeApi,
    spawned: Instant,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one spawn measured.
#[derive(Default)]
struct Start {
    init: Option<Duration>,
    first_response: Option<Duration>,
    outcome: String,
}

/// The answer's gist: the HTTP status of an API Gateway response, `ok` for
/// another response, or the error's type.
fn outcome(reply: &Reply) -> String {
    let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    match reply.kind {
        ReplyKind::Response => match json.get("statusCode").and_then(|s| s.as_u64()) {
            Some(status) => {
                // The gist of the body: a webhook's outcome or a problem's type.
                let body: serde_json::Value =
                    json["body"].as_str().and_then(|b| serde_json::from_str(b).ok()).unwrap_or_default();
                let gist = body["outcome"].as_str().or(body["type"].as_str());
                let replayed = json["headers"]["idempotent-replayed"].as_str() == Some("true");
                let mut text = status.to_string();
                if let Some(gist) = gist {
                    text.push_str(&format!(" {gist}"));
                }
                if replayed {
                    text.push_str(" replayed");
                }
                text
            }
            None => "ok".into(),
        },
        ReplyKind::Error => format!("error {}", json["errorType"].as_str().unwrap_or("?")),
        ReplyKind::InitError => format!("init error {}", json["errorType"].as_str().unwrap_or("?")),
    }
}

/// How long to wait for one answer before calling the process stuck.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

impl Process {
    /// Starts `bin` on table `table` with its first event already queued.
    async fn spawn(bin: &Binary, table: &str, webhook_secret: &str, log: &std::fs::File) -> Self {
        let mut api = RuntimeApi::start(&bin.name).await;
        api.push(bin.event_bytes(webhook_secret), bin.timeout_secs);
        let mut command = Command::new(&bin.path);
        command
            .env_clear()
            .envs(bin.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("SLOTGUARD_TABLE", table)
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log.try_clone().expect("clone the log file"));
        let spawned = Instant::now();
        let child = command.spawn().unwrap_or_else(|e| panic!("start {}: {e}", bin.path.display()));
        Self { child, api, spawned }
    }

    /// The next answer, or why none came.
    async fn answer(&mut self) -> Result<Reply, String> {
        let asked = Instant::now();
        loop {
            if let Some(reply) = self.api.reply(Duration::from_millis(20)).await {
                return Ok(reply);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited ({status})"));
            }
            if asked.elapsed() > ANSWER_TIMEOUT {
                return Err("no answer in 30 s".into());
            }
        }
    }

    async fn first(&mut self) -> Start {
        let reply = self.answer().await;
        let init = self.api.first_next().map(|t| t - self.spawned);
        match reply {
            Ok(reply) => Start {
                init,
                first_response: (reply.kind == ReplyKind::Response).then(|| reply.at - self.spawned),
                outcome: outcome(&reply),
            },
            Err(why) => Start { init, first_response: None, outcome: why },
        }
    }
}

/// The per-binary results of the cold-start rounds and the memory run.
struct Row {
    name: String,
    event: String,
    inits: Vec<Duration>,
    firsts: Vec<Duration>,
    outcomes: Vec<String>,
    peak_rss_mib: Option<f64>,
    warm: Vec<Duration>,
    memory_outcomes: Vec<String>,
}

/// Creates a fresh table with the demo resource (what `slotguard setup
/// --demo` makes), so each round's events meet the same state.
async fn fresh_table(ddb: &aws_sdk_dynamodb::Client, prefix: &str) -> String {
    use slotguard::ports::ResourceStore;
    let table = format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
    slotguard_local::dev::ensure_table(ddb, &table).await.expect("create a table");
    let store = slotguard::adapters::dynamo::DynamoStore::new(ddb.clone(), table.clone());
    let id = slotguard::domain::ResourceId::parse("demo").expect("a valid id");
    let demo = slotguard::domain::Resource::from_spec(id, slotguard_local::dev::demo_resource(None))
        .expect("the demo resource");
    store.put_resource(&demo).await.expect("store the demo resource");
    table
}

/// Distinct outcomes, in order, with counts: `201`, `201 ×199`...
fn outcomes(list: &[String]) -> String {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for o in list {
        match seen.iter_mut().find(|(s, _)| s == o) {
            Some((_, n)) => *n += 1,
            None => seen.push((o.clone(), 1)),
        }
    }
    seen.iter().map(|(o, n)| if *n > 1 { format!("{o} ×{n}") } else { o.clone() }).collect::<Vec<_>>().join(", ")
}

/// Runs the rounds and the memory run, and prints both tables.
pub async fn cold_starts(
    bins: &[Binary],
    ddb: &aws_sdk_dynamodb::Client,
    webhook_secret: &str,
    rounds: usize,
    invocations: usize,
    log: &std::fs::File,
) {
    let mut rows: Vec<Row> = bins
        .iter()
        .map(|b| Row {
            name: b.name.clone(),
            event: b.event_name.clone(),
            inits: vec![],
            firsts: vec![],
            outcomes: vec![],
            peak_rss_mib: None,
            warm: vec![],
            memory_outcomes: vec![],
        })
        .collect();
    for round in 0..rounds {
        let table = fresh_table(ddb, "bench-fn").await;
        // Each round starts at another binary, so none always goes first.
        for k in 0..bins.len() {
            let i = (k + round) % bins.len();
            let mut process = Process::spawn(&bins[i], &table, webhook_secret, log).await;
            let start = process.first().await;
            drop(process);
            let row = &mut rows[i];
            row.inits.extend(start.init);
            row.firsts.extend(start.first_response);
            row.outcomes.push(start.outcome);
        }
    }
    // Memory: one process per binary answering `invocations` events in turn.
    let table = fresh_table(ddb, "bench-mem").await;
    for (bin, row) in bins.iter().zip(rows.iter_mut()) {
        let mut process = Process::spawn(bin, &table, webhook_secret, log).await;
        let mut outcomes = Vec::new();
        match process.answer().await {
            Ok(reply) => outcomes.push(outcome(&reply)),
            Err(why) => outcomes.push(why),
        }
        for _ in 1..invocations {
            let sent = Instant::now();
            process.api.push(bin.event_bytes(webhook_secret), bin.timeout_secs);
            match process.answer().await {
                Ok(reply) => {
                    row.warm.push(reply.at - sent);
                    outcomes.push(outcome(&reply));
                }
                Err(why) => {
                    outcomes.push(why);
                    break;
                }
            }
        }
        row.peak_rss_mib = peak_rss_mib(&process.child.id().to_string());
        row.memory_outcomes = outcomes;
    }

    let hello = rows.iter().find(|r| r.name == HELLO);
    let (hello_init, hello_first) =
        hello.map_or((Duration::ZERO, Duration::ZERO), |h| (median(&h.inits), median(&h.firsts)));
    let hello_rss = hello.and_then(|h| h.peak_rss_mib);
    println!(
        "  {:<20} {:>9} {:>8} {:>11} {:>8}   1st response status per round; event",
        "binary", "init", "÷hello", "1st resp", "÷hello"
    );
    for r in &rows {
        println!(
            "  {:<20} {:>6.1} ms {:>8} {:>8.1} ms {:>8}   {}; {}",
            r.name,
            ms(median(&r.inits)),
            ratio(median(&r.inits), hello_init),
            ms(median(&r.firsts)),
            ratio(median(&r.firsts), hello_first),
            outcomes(&r.outcomes),
            r.event
        );
    }
    println!();
    println!(
        "peak RSS (VmHWM) of one process after {invocations} invocations of its event, read before it is killed; \
         warm = queued event to its answer, invocations 2..{invocations}"
    );
    println!("  {:<20} {:>10} {:>8} {:>10}   answers", "binary", "peak RSS", "÷hello", "warm p50");
    for r in &rows {
        let rss = r.peak_rss_mib.map_or("-".into(), |m| format!("{m:.1} MiB"));
        let rss_ratio = match (r.peak_rss_mib, hello_rss) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
            _ => "-".into(),
        };
        println!(
            "  {:<20} {:>10} {:>8} {:>7.2} ms   {}",
            r.name,
            rss,
            rss_ratio,
            ms(median(&r.warm)),
            outcomes(&r.memory_outcomes)
        );
    }
}

fn mib(path: &Path) -> Option<f64> {
    std::fs::metadata(path).ok().map(|m| m.len() as f64 / (1024.0 * 1024.0))
}

/// Prints each binary's size: the x86_64 release build in `x86_dir` and, if
/// given, the arm64 `bootstrap` cargo lambda put under `lambda_dir/<name>/`.
pub fn print_sizes(names: &[String], x86_dir: &Path, lambda_dir: Option<&Path>) {
    let size = |name: &str| (mib(&x86_dir.join(name)), lambda_dir.and_then(|d| mib(&d.join(name).join("bootstrap"))));
    let (hello_x86, hello_arm) = size(HELLO);
    let show = |v: Option<f64>| v.map_or("-".into(), |m| format!("{m:.2} MiB"));
    let times = |v: Option<f64>, hello: Option<f64>| match (v, hello) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    };
    println!("  {:<20} {:>12} {:>8} {:>12} {:>8}", "binary", "arm64", "÷hello", "x86_64", "÷hello");
    for name in names {
        let (x86, arm) = size(name);
        println!(
            "  {:<20} {:>12} {:>8} {:>12} {:>8}",
            name,
            show(arm),
            times(arm, hello_arm),
            show(x86),
            times(x86, hello_x86)
        );
    }
}

/// Creates a Checkout Session at the simulator at `sim` and pays it (no
/// webhook delivered); returns the session id and its payment intent.
pub async fn paid_session(http: &reqwest::Client, sim: &str, stripe_key: &str) -> (String, String) {
    let rid = "rsv_demo_20300107T080000_0123456789abcdef0123456789abcdef";
    let expires_at = (chrono::Utc::now().timestamp() + 3600).to_string();
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("mode", "payment")
        .append_pair("line_items[0][price_data][currency]", "eur")
        .append_pair("line_items[0][price_data][unit_amount]", "4500")
        .append_pair("line_items[0][price_data][product_data][name]", "Demo coaching call")
        .append_pair("line_items[0][quantity]", "1")
        .append_pair("client_reference_id", rid)
        .append_pair("customer_email", "ada@example.com")
        .append_pair("metadata[reservation_id]", rid)
        .append_pair("expires_at", &expires_at)
        .append_pair("success_url", "https://shop.example/booked")
        .finish();
    let session: serde_json::Value = http
        .post(format!("{sim}/v1/checkout/sessions"))
        .bearer_auth(stripe_key)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("create a session at the simulator")
        .json()
        .await
        .expect("a session");
    let id = session["id"].as_str().expect("a session id").to_owned();
    let paid: serde_json::Value = http
        .post(format!("{sim}/_sim/checkout/sessions/{id}/complete?deliveries=0"))
        .send()
        .await
        .expect("pay the session")
        .json()
        .await
        .expect("a payment");
    let payment_intent = paid["payment_intent"].as_str().expect("a payment intent").to_owned();
    (id, payment_intent)
}
