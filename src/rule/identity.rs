//! A rule's identity in Kibana: the saved-object id Kibana hashes into alert
//! ids and writes as `kibana.alert.rule.uuid`, the object's `revision`, and
//! who created and changed it when.
//!
//! An export states all of them on each rule (`id`, `revision`,
//! `created_at`/`_by`, `updated_at`/`_by`); a TOML file may name the Kibana
//! rule it stands for with `[metadata] kibana_rule_id`, since `[metadata]`
//! is never sent to Kibana. Everything here is validated like any other
//! field: wrong values are errors at the value, found with all the others.

use chrono::DateTime;

use super::error::RuleErrorKind;
use super::fields::Fields;

/// What ties a rule to its Kibana rule object; all `None`/0 when nothing does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Identity {
    pub kibana_id: Option<String>,
    pub revision: u64,
    pub created_at: Option<String>,
    pub created_by: Option<String>,
    pub updated_at: Option<String>,
    pub updated_by: Option<String>,
}

impl Fields<'_> {
    /// The identity keys of an exported rule. `id` may be absent (a rule in
    /// the shape of the create API has none): the rule then has no Kibana id.
    pub(super) fn export_identity(&mut self) -> Identity {
        Identity {
            kibana_id: self.uuid("id"),
            revision: self.revision(),
            created_at: self.timestamp("created_at"),
            created_by: self.string("created_by"),
            updated_at: self.timestamp("updated_at"),
            updated_by: self.string("updated_by"),
        }
    }

    /// `[metadata] kibana_rule_id`: the saved-object id of the Kibana rule
    /// this TOML file stands for.
    pub(super) fn kibana_rule_id(&mut self) -> Option<String> {
        self.uuid("kibana_rule_id")
    }

    /// Kibana rule object ids are UUIDs (`RuleObjectId` in
    /// `common_attributes.schema.yaml`); anything else is no Kibana rule's
    /// id, so alerts keyed by it would never link to one.
    fn uuid(&mut self, key: &str) -> Option<String> {
        let (s, span) = self.string_spanned(key)?;
        if is_uuid(&s) {
            Some(s)
        } else {
            self.error(
                RuleErrorKind::Value,
                span,
                format!(
                    "expected a UUID for `{key}` (a Kibana rule's saved-object id, \
                     like \"8f2c4c2e-6d1a-4d3b-9a55-0c6f0f3b6a11\"), found {s:?}"
                ),
            );
            None
        }
    }

    /// `revision`: a whole number from 0 (`RuleRevision`), absent = 0.
    fn revision(&mut self) -> u64 {
        let Some((n, span)) = self.integer("revision") else {
            return 0;
        };
        match u64::try_from(n) {
            Ok(n) => n,
            Err(_) => {
                self.error(
                    RuleErrorKind::Value,
                    span,
                    format!("expected a `revision` of 0 or more, found {n}"),
                );
                0
            }
        }
    }

    /// An RFC 3339 timestamp (Kibana writes `Date.toISOString()`), kept as
    /// written.
    fn timestamp(&mut self, key: &str) -> Option<String> {
        let (s, span) = self.string_spanned(key)?;
        if DateTime::parse_from_rfc3339(&s).is_ok() {
            return Some(s);
        }
        self.error(
            RuleErrorKind::Value,
            span,
            format!(
                "expected an RFC 3339 timestamp for `{key}` \
                 (like \"2024-05-01T10:00:00.000Z\"), found {s:?}"
            ),
        );
        None
    }
}

/// `8-4-4-4-12` hex digits with dashes, either case, as Kibana's schema
/// (zod's `uuid()`) accepts; the version digit is not checked.
pub fn is_uuid(s: &str) -> bool {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == GROUPS.len()
        && parts
            .iter()
            .zip(GROUPS)
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::is_uuid;

    #[test]
    fn uuid_shape() {
        assert!(is_uuid("8f2c4c2e-6d1a-4d3b-9a55-0c6f0f3b6a11"));
        assert!(is_uuid("8F2C4C2E-6D1A-4D3B-9A55-0C6F0F3B6A11"));
        assert!(is_uuid("00000000-0000-0000-0000-000000000000"));
        for bad in [
            "",
            "rule-1",
            "8f2c4c2e6d1a4d3b9a550c6f0f3b6a11",
            "8f2c4c2e-6d1a-4d3b-9a55-0c6f0f3b6a1",
            "8f2c4c2e-6d1a-4d3b-9a55-0c6f0f3b6a11-",
            "8f2c4c2e-6d1a-4d3b-9a55_0c6f0f3b6a11",
            "8f2c4c2g-6d1a-4d3b-9a55-0c6f0f3b6a11",
            "{8f2c4c2e-6d1a-4d3b-9a55-0c6f0f3b6a11}",
            " 8f2c4c2e-6d1a-4d3b-9a55-0c6f0f3b6a11",
        ] {
            assert!(!is_uuid(bad), "{bad:?}");
        }
    }
}
