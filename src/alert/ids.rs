//! Deterministic alert ids, Kibana's SHA-256 recipes
//! (`reference/kibana-eql-rules.md` §4.1), over the rule's uuid (the Kibana
//! rule's saved-object id where one is known, else its `rule_id`).
//!
//! The same event (index + id), or the same ordered set of sequence events,
//! always yields the same ids, so re-detection in overlapping windows is
//! absorbed by `create` conflicts.

use sha2::{Digest, Sha256};

/// What identifies one document: its index and id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRef<'a> {
    pub index: &'a str,
    pub id: &'a str,
}

fn sha256_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    hex(&h.finalize())
}

/// SHA-256, as hex, of `parts` each followed by a NUL byte: detectd's own
/// keys and ids (groups, rows, suppression instances), where no Kibana
/// recipe is copied.
pub fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize())
}

fn hex(digest: &[u8]) -> String {
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

/// Single-event alert (`generateId` in Kibana's `rule_types/utils/utils.ts`):
/// `sha256(index ‖ id ‖ version ‖ "<space>:<rule uuid>")`. EQL hits carry no
/// `_version`, so Kibana hashes the text `undefined`.
pub fn event_alert_id(event: EventRef<'_>, space_id: &str, rule_uuid: &str) -> String {
    let scope = format!("{space_id}:{rule_uuid}");
    sha256_hex(&[event.index, event.id, "undefined", &scope])
}

/// Building-block ids of one sequence (`generateBuildingBlockIds`): a base
/// string of, block after block, its ancestors' `id ‖ index` and the rule
/// uuid; block `i` is `sha256(base ‖ i)`. `blocks[i]` are block `i`'s
/// ancestors (its event, or an alert's ancestors and the alert).
pub fn building_block_ids(blocks: &[Vec<EventRef<'_>>], rule_uuid: &str) -> Vec<String> {
    let mut base = String::new();
    for ancestors in blocks {
        for a in ancestors {
            base.push_str(a.id);
            base.push_str(a.index);
        }
        base.push_str(rule_uuid);
    }
    (0..blocks.len())
        .map(|i| sha256_hex(&[&base, &i.to_string()]))
        .collect()
}

/// Shell alert id (`generateAlertId` in `build_alert.ts`): `sha256(Σ
/// ancestors (id ‖ index) ‖ rule uuid)` over the shell's ancestors, which
/// interleave each block's own ancestors with the block itself (index
/// `""`): `[ev0, bb0, ev1, bb1, …]`.
pub fn shell_alert_id(
    blocks: &[Vec<EventRef<'_>>],
    block_ids: &[String],
    rule_uuid: &str,
) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for (ancestors, block_id) in blocks.iter().zip(block_ids) {
        for a in ancestors {
            parts.push(a.id);
            parts.push(a.index);
        }
        parts.push(block_id);
        parts.push("");
    }
    parts.push(rule_uuid);
    sha256_hex(&parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes hashed are each part and a NUL: the threshold history's
    /// keys and ES|QL row ids stored before this helper keep their values.
    #[test]
    fn digest_hashes_each_part_followed_by_a_nul() {
        assert_eq!(
            digest(&["a", "b"]),
            "8fb20ef63ced4145fc2e983ffe597d1dcff39154c3bf21f0fa9dde6a0c50fdc9"
        );
        let terms = [
            ("host.name".to_string(), serde_json::json!("ws-1")),
            ("user.name".to_string(), serde_json::json!(["a", "b"])),
        ];
        assert_eq!(
            super::super::threshold::terms_hash(&terms),
            "7f0de040d8bd4da1d705a6627a4180f3506e77eef5f3e5d8a4f42483d9c31765"
        );
    }

    const A: EventRef<'static> = EventRef {
        index: "logs-endpoint.events.library-default",
        id: "a1",
    };
    const B: EventRef<'static> = EventRef {
        index: "logs-endpoint.events.network-default",
        id: "b2",
    };

    #[test]
    fn event_id_is_sha256_of_the_recipe() {
        // sha256("idx" + "1" + "undefined" + "default:r") computed independently
        // with coreutils: printf 'idx1undefineddefault:r' | sha256sum
        let id = event_alert_id(
            EventRef {
                index: "idx",
                id: "1",
            },
            "default",
            "r",
        );
        assert_eq!(
            id,
            "86433364da7b3451563e2e4a86bfa5a25376674620473c6e1d779dfc99015bc2"
        );
    }

    /// The test vector of `reference/kibana-eql-rules.md` §4.1 (computed
    /// from Kibana's recipe): events A = (a1, idx-a), B = (b2, idx-b), rule
    /// uuid `r`.
    #[test]
    fn shell_id_matches_the_reference_vector() {
        let blocks = vec![
            vec![EventRef {
                index: "idx-a",
                id: "a1",
            }],
            vec![EventRef {
                index: "idx-b",
                id: "b2",
            }],
        ];
        let ids = building_block_ids(&blocks, "r");
        // block ids: sha256("a1idx-arb2idx-br" + i), as `printf` + sha256sum give
        assert_eq!(
            ids,
            vec![
                sha256_hex(&["a1idx-arb2idx-br", "0"]),
                sha256_hex(&["a1idx-arb2idx-br", "1"])
            ]
        );
        assert_eq!(
            shell_alert_id(&blocks, &ids, "r"),
            "09684f0e9ef972cf93c7c2dfa4ba0a67378da53b1f6054a3ea115eab8410faaa"
        );
    }

    #[test]
    fn ids_are_stable_and_depend_on_every_input() {
        let x = event_alert_id(A, "default", "rule-1");
        assert_eq!(x, event_alert_id(A, "default", "rule-1"));
        assert_ne!(x, event_alert_id(B, "default", "rule-1"));
        assert_ne!(x, event_alert_id(A, "other", "rule-1"));
        assert_ne!(x, event_alert_id(A, "default", "rule-2"));
    }

    #[test]
    fn building_blocks_depend_on_the_whole_sequence_and_position() {
        let ab = building_block_ids(&[vec![A], vec![B]], "r");
        let ba = building_block_ids(&[vec![B], vec![A]], "r");
        assert_eq!(ab.len(), 2);
        assert_ne!(ab[0], ab[1]);
        assert_ne!(ab, ba);
        let shell = shell_alert_id(&[vec![A], vec![B]], &ab, "r");
        assert_eq!(shell, shell_alert_id(&[vec![A], vec![B]], &ab, "r"));
        assert_ne!(shell, shell_alert_id(&[vec![B], vec![A]], &ba, "r"));
        assert!(!ab.contains(&shell));
    }
}
