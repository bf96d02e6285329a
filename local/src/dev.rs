//! Tooling for the local stack: clients pointed at loopback endpoints, the
//! table as `template.yaml` defines it, and the demo resource.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TimeToLiveSpecification,
};
use slotguard::domain::ResourceSpec;

/// A DynamoDB client for DynamoDB Local at `endpoint`, with dummy credentials.
pub fn dynamodb_client(endpoint: &str) -> Client {
    slotguard::adapters::install_crypto_provider();
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "slotguard-local"))
        .endpoint_url(endpoint)
        .timeout_config(slotguard::adapters::aws::timeouts())
        .build();
    Client::from_conf(config)
}

/// An SQS client for the local SQS server at `endpoint`, with dummy credentials.
pub fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    slotguard::adapters::install_crypto_provider();
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new("local", "local", None, None, "slotguard-local"))
        .endpoint_url(endpoint)
        .timeout_config(slotguard::adapters::aws::timeouts())
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// The calendar queue's `maxReceiveCount`, as in `template.yaml`.
pub const MAX_RECEIVES: u32 = 5;

/// Creates `{name}` and `{name}-dlq` as `template.yaml` does: the queue
/// redrives to the dead-letter queue after [`MAX_RECEIVES`] receives. Returns
/// both URLs.
pub async fn create_calendar_queues(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    visibility_timeout_secs: u32,
) -> Result<(String, String), aws_sdk_sqs::Error> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let dlq_url = sqs.create_queue().queue_name(format!("{name}-dlq")).send().await?.queue_url.unwrap_or_default();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .unwrap_or_default();
    let redrive = serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES.to_string() });
    let queue_url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::VisibilityTimeout, visibility_timeout_secs.to_string())
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await?
        .queue_url
        .unwrap_or_default();
    Ok((queue_url, dlq_url))
}

/// Creates the table as `template.yaml` does (keys `pk`/`sk`, on-demand, TTL on
/// `expires_at`) unless it exists.
pub async fn ensure_table(client: &Client, table: &str) -> Result<(), aws_sdk_dynamodb::Error> {
    let exists = client.describe_table().table_name(table).send().await.is_ok();
    if exists {
        return Ok(());
    }
    let attribute = |name: &str| {
        AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build().unwrap()
    };
    let key = |name: &str, kind| KeySchemaElement::builder().attribute_name(name).key_type(kind).build().unwrap();
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .send()
        .await?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder().enabled(true).attribute_name("expires_at").build().unwrap(),
        )
        .send()
        .await?;
    Ok(())
}

/// The `demo` resource the local run seeds: a coaching call in Berlin,
/// 30-minute slots on weekdays 09:00–17:00 and Saturday mornings, EUR 45,
/// written to the CalDAV calendar at `caldav_url` if given.
pub fn demo_resource(caldav_url: Option<&str>) -> ResourceSpec {
    let calendar = match caldav_url {
        Some(url) => serde_json::json!({ "type": "caldav", "url": url }),
        None => serde_json::json!({ "type": "none" }),
    };
    serde_json::from_value(serde_json::json!({
        "calendar": calendar,
        "name": "Demo coaching call",
        "timezone": "Europe/Berlin",
        "slot_minutes": 30,
        "price": { "amount": 4500, "currency": "eur" },
        "hold_minutes": 30,
        "weekly_hours": {
            "mon": [{ "start": "09:00", "end": "12:00" }, { "start": "13:00", "end": "17:00" }],
            "tue": [{ "start": "09:00", "end": "12:00" }, { "start": "13:00", "end": "17:00" }],
            "wed": [{ "start": "09:00", "end": "12:00" }, { "start": "13:00", "end": "17:00" }],
            "thu": [{ "start": "09:00", "end": "12:00" }, { "start": "13:00", "end": "17:00" }],
            "fri": [{ "start": "09:00", "end": "12:00" }, { "start": "13:00", "end": "17:00" }],
            "sat": [{ "start": "10:00", "end": "13:00" }]
        }
    }))
    .expect("the demo resource is a valid spec")
}

/// Prepares a local stack for slotguard: the table, the calendar queues
/// (named after `SLOTGUARD_CALENDAR_QUEUE_URL`, if set) and, with `demo`, the
/// `demo` resource writing to `SLOTGUARD_CALDAV_URL` (if set).
pub async fn setup(
    aws: &aws_config::SdkConfig,
    store: &slotguard::adapters::dynamo::DynamoStore,
    demo: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    use slotguard::ports::ResourceStore;
    ensure_table(store.client(), store.table()).await?;
    if let Ok(url) = std::env::var("SLOTGUARD_CALENDAR_QUEUE_URL") {
        let name = url.rsplit('/').next().unwrap_or_default();
        create_calendar_queues(&aws_sdk_sqs::Client::new(aws), name, 30).await?;
    }
    if demo {
        let caldav = std::env::var("SLOTGUARD_CALDAV_URL").ok();
        let id = slotguard::domain::ResourceId::parse("demo")?;
        store.put_resource(&slotguard::domain::Resource::from_spec(id, demo_resource(caldav.as_deref()))?).await?;
    }
    Ok(())
}
