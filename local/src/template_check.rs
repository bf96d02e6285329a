//! Keeps `template.yaml`, `functions/`, `events/` and the local gateway in
//! step: every function crate is deployed by the template and every template
//! function has a crate; every HTTP route the gateway serves is in the
//! template and every template route is served locally; every scheduled
//! function has its scheduler event in `events/` (`schedule-{binary}.json`)
//! and back; every function is invoked with an `events/` file by the event
//! checks (`scripts/lib/event-checks.sh`) and every `events/` file is sent.
//!
//! The template is read line by line rather than as YAML: CloudFormation's
//! short-form tags (`!Ref`, `!GetAtt`) need a CloudFormation-aware parser,
//! and only a few plain fields are needed (`BuildProperties.Binary`, the
//! `Method`/`Path` of `HttpApi` events, `Type: ScheduleV2`). `cfn-lint` and
//! `sam validate`, run by `scripts/test`, check the template as a whole.

use crate::gateway::ROUTES;
use std::collections::BTreeSet;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn template() -> String {
    std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml at the repository root")
}

fn value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.trim().strip_prefix(key)?.strip_prefix(':').map(|v| v.trim().trim_matches('"'))
}

/// The `Binary` of every function's cargo-lambda build properties.
fn template_binaries(template: &str) -> BTreeSet<String> {
    template.lines().filter_map(|l| value(l, "Binary")).map(str::to_owned).collect()
}

/// `(method, path)` of every `HttpApi` event.
fn template_routes(template: &str) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let mut in_http_event = false;
    let (mut method, mut path) = (None, None);
    for line in template.lines() {
        if let Some(kind) = value(line, "Type") {
            in_http_event = kind == "HttpApi";
            (method, path) = (None, None);
        } else if in_http_event {
            method = value(line, "Method").map(str::to_owned).or(method);
            path = value(line, "Path").map(str::to_owned).or(path);
            if let (Some(m), Some(p)) = (&method, &path) {
                routes.insert((m.clone(), p.clone()));
                in_http_event = false;
            }
        }
    }
    routes
}

/// The `Binary` of every function with a `ScheduleV2` event (each
/// function's `Metadata`, with its `Binary`, comes before its `Events`).
fn scheduled_binaries(template: &str) -> BTreeSet<String> {
    let mut scheduled = BTreeSet::new();
    let mut binary: Option<&str> = None;
    for line in template.lines() {
        // A resource of its own starts at two spaces of indentation.
        if line.starts_with("  ") && !line.starts_with("   ") && line.trim_end().ends_with(':') {
            binary = None;
        }
        binary = value(line, "Binary").or(binary);
        if let (Some("ScheduleV2"), Some(b)) = (value(line, "Type"), binary) {
            scheduled.insert(b.to_owned());
        }
    }
    scheduled
}

/// Every file under `events/`, as `events/...`.
fn event_files() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap()) {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|x| x == "json") {
                out.insert(path.strip_prefix(root()).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut files = BTreeSet::new();
    walk(&root().join("events"), &mut files);
    files
}

/// `(function, events file)` of every `check` in the event checks, and the
/// `events/` files they sign (Stripe bodies, wrapped by `signed`).
fn event_checks() -> (BTreeSet<String>, BTreeSet<String>) {
    let text = std::fs::read_to_string(root().join("scripts/lib/event-checks.sh")).expect("the event checks");
    let (mut functions, mut files) = (BTreeSet::new(), BTreeSet::new());
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("check ") {
            let mut words = rest.split_whitespace();
            functions.extend(words.next().map(str::to_owned));
        }
        let mentioned = line.split(|c: char| c.is_whitespace() || "\"()$".contains(c));
        files.extend(mentioned.filter(|w| w.starts_with("events/") && w.ends_with(".json")).map(str::to_owned));
    }
    (functions, files)
}

#[test]
fn every_scheduled_function_has_its_scheduler_event_and_back() {
    let samples: BTreeSet<String> = event_files()
        .iter()
        .filter_map(|f| f.strip_prefix("events/schedule-")?.strip_suffix(".json").map(str::to_owned))
        .collect();
    let scheduled = scheduled_binaries(&template());
    assert!(scheduled.contains("catch-up") && scheduled.contains("reconcile"), "{scheduled:?}");
    assert_eq!(scheduled, samples, "functions on a ScheduleV2 (left) vs events/schedule-*.json (right)");
}

#[test]
fn every_function_is_invoked_with_an_events_file_and_every_events_file_is_sent() {
    let (functions, files) = event_checks();
    assert_eq!(functions, template_binaries(&template()), "functions the event checks invoke (left) vs the template's");
    assert_eq!(files, event_files(), "events/ files the event checks send (left) vs events/ (right)");
}

#[test]
fn every_function_crate_is_in_the_template_and_back() {
    let crates: BTreeSet<String> = std::fs::read_dir(root().join("functions"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let binaries = template_binaries(&template());
    assert!(crates.len() >= 9, "{crates:?}");
    assert_eq!(binaries, crates, "template functions (left) vs crates in functions/ (right)");
}

#[test]
fn every_gateway_route_is_in_the_template_and_back() {
    let served: BTreeSet<(String, String)> =
        ROUTES.iter().map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned())).collect();
    assert_eq!(template_routes(&template()), served, "template routes (left) vs gateway routes (right)");
}

#[test]
fn the_scanner_reads_routes_and_binaries() {
    let sample = "  A:\n    Metadata:\n      BuildProperties:\n        Binary: reserve\n    Properties:\n      Events:\n        E:\n          Type: HttpApi\n          Properties:\n            Method: POST\n            Path: /v1/reservations\n        Q:\n          Type: SQS\n          Properties:\n            Queue: x\n";
    assert_eq!(template_binaries(sample), BTreeSet::from(["reserve".to_owned()]));
    assert_eq!(template_routes(sample), BTreeSet::from([("POST".to_owned(), "/v1/reservations".to_owned())]));
    let scheduled = "  A:\n    Metadata:\n      BuildProperties:\n        Binary: reserve\n  B:\n    Metadata:\n      BuildProperties:\n        Binary: reconcile\n    Properties:\n      Events:\n        Hourly:\n          Type: ScheduleV2\n  C:\n    Properties:\n      Events:\n        E:\n          Type: ScheduleV2\n";
    assert_eq!(scheduled_binaries(scheduled), BTreeSet::from(["reconcile".to_owned()]));
}
