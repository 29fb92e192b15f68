//! What `explain` says of a threat_match rule: where its indicators come
//! from, how events are joined with them, and what an alert carries.

use crate::rule::{QueryLanguage, ThreatMatchRule};

use super::text::one_line;

/// `(label, text)` rows after the rule's query.
pub(super) fn rows(t: &ThreatMatchRule) -> Vec<(&'static str, String)> {
    let language = match t.threat_query.language {
        QueryLanguage::Kql(_) => "KQL",
        QueryLanguage::Lucene => "Lucene",
    };
    let query = match one_line(&t.threat_query.text) {
        q if q.trim().is_empty() => "(empty: every indicator)".to_string(),
        q => q,
    };
    let mut out = vec![
        ("indicators", t.threat_index.join(", ")),
        ("threat_query", format!("{query} ({language})")),
    ];
    if !t.threat_filters.is_empty() {
        out.push((
            "threat_filt.",
            format!(
                "{} Kibana filters on the indicators",
                t.threat_filters.len()
            ),
        ));
    }
    out.push((
        "ind. search",
        "no time range (only what threat_query says), with the rule's exceptions, indicators \
         lacking every mapping's fields skipped; loaded once per run, paged with a point in time"
            .to_string(),
    ));
    let mappings: Vec<String> = t
        .threat_mapping
        .iter()
        .map(|m| {
            let entries: Vec<String> = m
                .entries
                .iter()
                .map(|e| format!("event.{} == indicator.{}", e.field, e.value))
                .collect();
            format!("({})", entries.join(" and "))
        })
        .collect();
    out.push(("mapping", mappings.join(" or ")));
    out.push((
        "join",
        "a local hash join: the indicators' mapped values are keys (per mapping, every value \
         combination; arrays match by any value), each event of the window is looked up; \
         values compare as exact text"
            .to_string(),
    ));
    out.push((
        "enrichment",
        format!(
            "threat.enrichments gets one {{indicator, feed, matched}} per indicator and mapping \
             entry matched (indicator = the document's `{}`), after those the event has; at most \
             200",
            t.indicator_path
        ),
    ));
    out
}
