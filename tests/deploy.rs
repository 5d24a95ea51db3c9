//! What `docs/deploy.md` hands operators: the Prometheus alert rules parse, have the shape
//! Prometheus loads, and watch only metrics FiLot exports.

use filot::telemetry::metrics::names::*;

#[test]
fn the_alert_rules_parse_and_name_only_exported_metrics() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/alerts.yml")).unwrap();
    let rules: serde_yaml::Value = serde_yaml::from_str(&text).expect("alerts.yml is YAML");
    let exported: Vec<String> = [
        QUEUE_LENGTH,
        OCR_SUCCESS_COUNT,
        CLUSTER_NODES,
        CLUSTER_REFUSED_COUNT,
        BULI2_BREAKER_STATE,
        OUTBOX_DEAD_LETTER_COUNT,
        LEASES_AVAILABLE,
    ]
    .iter()
    .map(|n| n.replace('.', "_"))
    .collect();
    let metric = regex::Regex::new(r"filot_[a-z0-9_]+").unwrap();
    let mut alerts = Vec::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        assert!(group["name"].as_str().is_some());
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"].as_str().expect("alert name");
            let expr = rule["expr"].as_str().expect("expr");
            assert!(
                ["warning", "critical"].contains(&rule["labels"]["severity"].as_str().unwrap()),
                "{name}: severity"
            );
            assert!(
                rule["annotations"]["summary"].as_str().is_some(),
                "{name}: summary"
            );
            if let Some(period) = rule.get("for") {
                let period = period.as_str().unwrap();
                assert!(
                    period.ends_with('m') || period.ends_with('s'),
                    "{name}: for {period}"
                );
            }
            for used in metric.find_iter(expr) {
                assert!(
                    exported.iter().any(|e| e == used.as_str()),
                    "{name} watches {}, which FiLot does not export",
                    used.as_str()
                );
            }
            alerts.push(name.to_string());
        }
    }
    for wanted in [
        "FilotQueueGrowing",
        "FilotNoOcrCapacity",
        "FilotOcrNodeDown",
        "FilotBuli2BreakerOpen",
        "FilotDeadLetters",
    ] {
        assert!(alerts.iter().any(|a| a == wanted), "{wanted} missing");
    }
}
