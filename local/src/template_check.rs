//! Keeps `template.yaml`, `functions/` and the local gateway in step: every
//! function crate is deployed by the template and every template function has
//! a crate; every HTTP route the gateway serves is in the template and every
//! template route is served locally.
//!
//! The template is read line by line rather than as YAML: CloudFormation's
//! short-form tags (`!Ref`, `!GetAtt`) need a CloudFormation-aware parser,
//! and only two plain fields are needed (`BuildProperties.Binary` and the
//! `Method`/`Path` of `HttpApi` events). `cfn-lint` and `sam validate`, run by
//! `scripts/test`, check the template as a whole.

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
}
