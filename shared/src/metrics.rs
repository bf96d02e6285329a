//! Metrics as CloudWatch Embedded Metric Format (EMF) lines.
//!
//! Lambda ships stdout and stderr to CloudWatch Logs, which turns each EMF line into
//! metric data points: no SDK call, no extra latency, no extra IAM. Names:
//!
//! | metric | unit | dimensions | emitted by |
//! |---|---|---|---|
//! | `ReservationConflicts` | Count | | reserve, on `409 slot_taken` |
//! | `GhostPaymentRefunds` | Count | | webhook, refunding a payment for a taken slot |
//! | `CalendarWriteLatency` | Milliseconds | `Provider` | calendar writer, per successful write |
//! | `CalendarWriteFailures` | Count | `Kind` | calendar writer, per failed attempt (`http_503`, `timeout`, ...) |
//! | `DeadLetterSends` | Count | `Reason` | calendar writer, per job sent to the DLQ |
//! | `ReconcileMissing`, `ReconcileOrphans`, `ReconcileDuplicates` | Count | | reconcile |

use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every slotguard metric.
pub const NAMESPACE: &str = "slotguard";

/// CloudWatch units used here.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One EMF document for one metric value with optional dimensions.
pub fn emf_line(name: &str, value: f64, unit: Unit, dimensions: &[(&str, &str)], timestamp_ms: i64) -> String {
    let mut doc = Map::new();
    let dimension_names: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimension_names],
                "Metrics": [{ "Name": name, "Unit": unit.as_str() }],
            }],
        }),
    );
    for (k, v) in dimensions {
        doc.insert((*k).into(), Value::String((*v).into()));
    }
    doc.insert(name.into(), json!(value));
    Value::Object(doc).to_string()
}

/// Emits one metric value now, on stderr: Lambda sends both streams to
/// CloudWatch Logs, and the `slotguard` command keeps stdout for its output.
pub fn emit(name: &str, value: f64, unit: Unit, dimensions: &[(&str, &str)]) {
    eprintln!("{}", emf_line(name, value, unit, dimensions, chrono::Utc::now().timestamp_millis()));
}

/// Counts one occurrence.
pub fn count(name: &str, dimensions: &[(&str, &str)]) {
    emit(name, 1.0, Unit::Count, dimensions);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_embedded_metric_format() {
        let line = emf_line("CalendarWriteFailures", 1.0, Unit::Count, &[("Kind", "http_503")], 1_780_000_000_000);
        let doc: Value = serde_json::from_str(&line).unwrap();
        let meta = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], 1_780_000_000_000i64);
        assert_eq!(meta["Namespace"], "slotguard");
        assert_eq!(meta["Dimensions"], json!([["Kind"]]));
        assert_eq!(meta["Metrics"], json!([{"Name": "CalendarWriteFailures", "Unit": "Count"}]));
        assert_eq!(doc["Kind"], "http_503");
        assert_eq!(doc["CalendarWriteFailures"], 1.0);
        assert!(!line.contains('\n'), "one line per document");
    }

    #[test]
    fn a_metric_without_dimensions_has_one_empty_dimension_set() {
        let doc: Value = serde_json::from_str(&emf_line("GhostPaymentRefunds", 1.0, Unit::Count, &[], 0)).unwrap();
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
    }
}
