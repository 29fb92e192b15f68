//! What server answers: distribution and version from `GET /`, and what
//! follows from them (the point-in-time API, the `_shard_doc` sort).

use std::fmt;

use serde_json::Value;

/// Which server product answered `GET /`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    Elasticsearch,
    OpenSearch,
}

/// A `major.minor.patch` version (pre-release suffixes dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub fn parse(text: &str) -> Option<Version> {
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
        let major = parts.next()??;
        let minor = parts.next().unwrap_or(Some(0))?;
        let patch = parts.next().unwrap_or(Some(0))?;
        Some(Version {
            major,
            minor,
            patch,
        })
    }

    pub const fn new(major: u32, minor: u32) -> Version {
        Version {
            major,
            minor,
            patch: 0,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The point-in-time API flavour of a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PitApi {
    /// Elasticsearch: `POST /<idx>/_pit`, `DELETE /_pit {"id"}`.
    Elasticsearch,
    /// OpenSearch: `POST /<idx>/_search/point_in_time`,
    /// `DELETE /_search/point_in_time {"pit_id": [..]}`.
    OpenSearch,
}

/// What `GET /` told us about the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerInfo {
    pub distribution: Distribution,
    pub version: Version,
    pub cluster_name: String,
}

impl ServerInfo {
    /// Reads the `GET /` body. OpenSearch says so in `version.distribution`;
    /// Elasticsearch has no such field (or `build_flavor`).
    pub fn from_root(body: &Value) -> Result<ServerInfo, String> {
        let version = body
            .pointer("/version/number")
            .and_then(Value::as_str)
            .ok_or("expected `version.number` in the `GET /` response, found none")?;
        let parsed = Version::parse(version)
            .ok_or_else(|| format!("expected a version like 8.15.0, found `{version}`"))?;
        let distribution = match body
            .pointer("/version/distribution")
            .and_then(Value::as_str)
        {
            Some("opensearch") => Distribution::OpenSearch,
            Some(other) if other != "elasticsearch" => {
                return Err(format!(
                    "expected distribution elasticsearch or opensearch, found `{other}`"
                ))
            }
            _ => Distribution::Elasticsearch,
        };
        let supported = match distribution {
            Distribution::Elasticsearch => parsed >= Version::new(7, 17),
            Distribution::OpenSearch => parsed >= Version::new(2, 0),
        };
        if !supported {
            return Err(format!(
                "expected Elasticsearch 7.17 or later or OpenSearch 2.0 or later, found {distribution:?} {parsed}"
            ));
        }
        Ok(ServerInfo {
            distribution,
            version: parsed,
            cluster_name: body
                .get("cluster_name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        })
    }

    pub fn pit_api(&self) -> PitApi {
        match self.distribution {
            Distribution::Elasticsearch => PitApi::Elasticsearch,
            Distribution::OpenSearch => PitApi::OpenSearch,
        }
    }

    /// Whether the `_shard_doc` tiebreak sort exists: Elasticsearch 7.12+,
    /// OpenSearch only from 3.3 (opensearch-project/OpenSearch#18924).
    pub fn supports_shard_doc(&self) -> bool {
        match self.distribution {
            Distribution::Elasticsearch => self.version >= Version::new(7, 12),
            Distribution::OpenSearch => self.version >= Version::new(3, 3),
        }
    }

    /// `case_insensitive` on `term` / `wildcard` / `prefix` queries came with
    /// Elasticsearch 7.10, so every supported server (and OpenSearch, forked
    /// from 7.10.2) has it; kept as a method so the rendering asks.
    pub fn supports_case_insensitive(&self) -> bool {
        match self.distribution {
            Distribution::Elasticsearch => self.version >= Version::new(7, 10),
            Distribution::OpenSearch => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn detects_distribution_and_version() {
        let os = ServerInfo::from_root(
            &json!({"cluster_name":"c","version":{"distribution":"opensearch","number":"2.11.1"}}),
        )
        .unwrap();
        assert_eq!(os.distribution, Distribution::OpenSearch);
        assert_eq!(os.pit_api(), PitApi::OpenSearch);
        assert!(!os.supports_shard_doc());
        let os33 = ServerInfo::from_root(
            &json!({"version":{"distribution":"opensearch","number":"3.3.0"}}),
        )
        .unwrap();
        assert!(os33.supports_shard_doc());
        let es =
            ServerInfo::from_root(&json!({"version":{"number":"8.15.0","build_flavor":"default"}}))
                .unwrap();
        assert_eq!(es.distribution, Distribution::Elasticsearch);
        assert_eq!(es.pit_api(), PitApi::Elasticsearch);
        assert!(es.supports_shard_doc());
        let es9 = ServerInfo::from_root(&json!({"version":{"number":"9.1.0-SNAPSHOT"}})).unwrap();
        assert_eq!(
            es9.version,
            Version {
                major: 9,
                minor: 1,
                patch: 0
            }
        );
    }

    #[test]
    fn rejects_old_or_unknown_servers() {
        let err = ServerInfo::from_root(&json!({"version":{"number":"7.10.2"}})).unwrap_err();
        assert!(err.contains("7.17"), "{err}");
        assert!(ServerInfo::from_root(
            &json!({"version":{"number":"1.3.0","distribution":"opensearch"}})
        )
        .is_err());
        assert!(ServerInfo::from_root(&json!({"version":{"number":"x"}})).is_err());
        assert!(ServerInfo::from_root(&json!({"tagline":"hi"})).is_err());
        assert!(ServerInfo::from_root(
            &json!({"version":{"number":"8.1.0","distribution":"other"}})
        )
        .is_err());
    }
}
