//! Reading what narrows every rule's events, whatever its type: Kibana
//! `filters` (validated as `kibana_filter` reads them) and the references
//! of `exceptions_list` (checked in shape here; the lists themselves are
//! found later, see [`super::lists`]). How they select events is
//! `runner::detect::constraints`'.

use toml::Value;

use super::error::RuleErrorKind;
use super::fields::Fields;
use super::raw::toml_to_json;
use crate::exceptions::ListRef;
use crate::kibana_filter::{parse_filters, KibanaFilter};

impl Fields<'_> {
    /// `filters`: Kibana filter objects (`[[rule.filters]]` in TOML), each
    /// checked; every problem is reported with where in the list it is.
    pub(super) fn filters(&mut self) -> Vec<KibanaFilter> {
        let Some((value, span)) = self.get("filters") else {
            return Vec::new();
        };
        if !value.is_array() {
            self.wrong_type("filters", "an array of Kibana filter objects", value, span);
            return Vec::new();
        }
        match parse_filters(&toml_to_json(value)) {
            Ok(filters) => filters,
            Err(errors) => {
                for e in errors {
                    self.error(
                        RuleErrorKind::Value,
                        span,
                        // The error names its place as a JSON pointer into
                        // the list (`/2/query/wildcard`: the third filter).
                        format!("invalid `filters`: {e}"),
                    );
                }
                Vec::new()
            }
        }
    }

    /// `exceptions_list`: `{ id, list_id, namespace_type, type }` entries.
    pub(super) fn exceptions_list(&mut self) -> Vec<ListRef> {
        let Some((value, span)) = self.get("exceptions_list") else {
            return Vec::new();
        };
        let Value::Array(items) = value else {
            let expected = "an array of list references ({ id, list_id, namespace_type, type })";
            self.wrong_type("exceptions_list", expected, value, span);
            return Vec::new();
        };
        let mut refs = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match ListRef::from_json(&toml_to_json(item), i) {
                Ok(r) => refs.push(r),
                Err(e) => self.error(RuleErrorKind::Value, span, format!("invalid {e}")),
            }
        }
        refs
    }
}
