//! New-terms alerts as Kibana builds them (`wrapNewTermsAlerts` in
//! `rule_types/new_terms/wrap_new_terms_alerts.ts`): the alert of the
//! first document of a new tuple in the window is that document's event
//! alert (`transformHitToAlert`, the common reason template) with
//! `kibana.alert.new_terms` = the tuple's values in the rule's field order
//! (the composite bucket's key values, `Object.values(bucket.key)`).
//!
//! The id is per (document, rule, tuple), as Kibana's: it hashes the
//! document's index and id, `<space>:<rule uuid>` and the values (Kibana:
//! `objectHash([_index, _id, String(_version), "<space>:<rule id>",
//! newTerms])`). Kibana's `object-hash` serialisation is its library's own;
//! detectd hashes the same parts with SHA-256 (and `undefined` for the
//! version, as its event alert ids do), so an id is stable across windows
//! and runs — overlapping windows that find the same first document of the
//! same tuple make the same alert, which the write absorbs — but it is not
//! byte-identical to Kibana's.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{event_alert_with_id, Alert, AlertContext, AlertRule, SourceEvent};

/// The id of the alert on the document `index`/`id` for the tuple `terms`.
pub fn new_terms_alert_id(
    index: &str,
    id: &str,
    terms: &[Value],
    space_id: &str,
    rule_uuid: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [index, id, "undefined", &format!("{space_id}:{rule_uuid}")] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.update(Value::Array(terms.to_vec()).to_string().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The alert on `event`, the first document of the new tuple `terms` in
/// its window; `None` when the event is an alert of this very rule.
pub fn new_terms_alert(
    rule: &AlertRule,
    ctx: &AlertContext,
    event: &SourceEvent,
    terms: &[Value],
) -> Option<Alert> {
    let id = new_terms_alert_id(&event.index, &event.id, terms, &ctx.space_id, &rule.uuid);
    let mut alert = event_alert_with_id(rule, ctx, event, id)?;
    if let Value::Object(body) = &mut alert.source {
        body.insert(
            "kibana.alert.new_terms".into(),
            Value::Array(terms.to_vec()),
        );
    }
    Some(alert)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_id_depends_on_document_rule_and_tuple_only() {
        let id = |index: &str, doc: &str, terms: Value, rule: &str| {
            let Value::Array(terms) = terms else {
                unreachable!()
            };
            new_terms_alert_id(index, doc, &terms, "default", rule)
        };
        let a = id("logs-1", "d1", json!(["h1", "bash"]), "r");
        assert_eq!(a, id("logs-1", "d1", json!(["h1", "bash"]), "r"));
        assert_eq!(a.len(), 64);
        for other in [
            id("logs-2", "d1", json!(["h1", "bash"]), "r"),
            id("logs-1", "d2", json!(["h1", "bash"]), "r"),
            id("logs-1", "d1", json!(["h1", "sh"]), "r"),
            id("logs-1", "d1", json!(["bash", "h1"]), "r"),
            id("logs-1", "d1", json!(["h1", "bash"]), "r2"),
        ] {
            assert_ne!(a, other);
        }
    }
}
