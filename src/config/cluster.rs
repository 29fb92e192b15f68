//! Connection settings for the Elasticsearch / OpenSearch cluster.
//!
//! [`ClusterSettings`] is the raw, mergeable layer: every field is optional so
//! that a config file, the environment and flags can each fill some of them
//! and [`ClusterSettings::merge`] lets the later layer win. Its `Debug` never
//! shows a secret. [`ClusterSettings::resolve`] turns the merged layers into
//! [`ConnectionSettings`], which cannot be invalid (URLs parsed, auth chosen,
//! defaults applied). Opening the connection lives in `crate::cluster`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A secret string (API key, password): deserializes from a plain string and
/// is redacted in `Debug` and `Display`, so logs and panics never show it.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; call only where it is handed to the HTTP client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(\"<redacted>\")")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Raw cluster settings as written in a config file (`[elasticsearch]`),
/// read from the environment or given as flags.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    /// One or more node URLs (`http://host:9200`); requests round-robin.
    pub urls: Option<Vec<String>>,
    /// An API key: the base64 `id:key` form Elasticsearch returns as `encoded`.
    pub api_key: Option<Secret>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// A PEM file with the CA certificate(s) to trust for HTTPS.
    pub ca_cert: Option<PathBuf>,
    /// Verify the server certificate (default true). Turning it off is for
    /// throw-away test clusters only.
    pub verify_tls: Option<bool>,
    /// Timeout of one HTTP request, in seconds (default 30).
    pub request_timeout_secs: Option<f64>,
    /// Gzip request bodies (responses are always accepted gzipped).
    pub gzip: Option<bool>,
}

/// The environment variables [`ClusterSettings::from_env`] reads.
pub const ENV_URL: &str = "ELASTICSEARCH_URL";
pub const ENV_API_KEY: &str = "ELASTICSEARCH_API_KEY";
pub const ENV_USERNAME: &str = "ELASTICSEARCH_USERNAME";
pub const ENV_PASSWORD: &str = "ELASTICSEARCH_PASSWORD";
pub const ENV_CA_CERT: &str = "ELASTICSEARCH_CA_CERT";

/// Default request timeout when none is configured.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SettingsError {
    #[error("no cluster url: expected `urls` in the config or {ENV_URL}")]
    NoUrl,
    #[error("invalid cluster url `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cluster url `{url}` has scheme `{scheme}`, expected http or https")]
    BadScheme { url: String, scheme: String },
    #[error("a password is set but no username: expected both for basic auth")]
    PasswordWithoutUser,
    #[error("a username is set but no password: expected both for basic auth")]
    UserWithoutPassword,
    #[error("both an api key and a username are set: expected one kind of auth")]
    TwoAuthMethods,
    #[error("the cluster urls carry different credentials: expected one username and password")]
    UrlCredentialsDiffer,
    #[error("invalid request timeout {0}: expected a positive number of seconds")]
    BadTimeout(f64),
}

/// `raw` with any `user:password@` between the scheme and the host replaced
/// by `<redacted>@`, for error messages about a URL that may carry secrets.
fn redact_userinfo(raw: &str) -> String {
    let Some(scheme_end) = raw.find("://").map(|i| i + 3) else {
        return raw.to_string();
    };
    let authority_end = raw[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(raw.len(), |i| scheme_end + i);
    match raw[scheme_end..authority_end].rfind('@') {
        Some(at) => format!(
            "{}<redacted>{}",
            &raw[..scheme_end],
            &raw[scheme_end + at..]
        ),
        None => raw.to_string(),
    }
}

/// Decodes `%XX` escapes (URL userinfo is percent-encoded by the parser).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How detectd authenticates to the cluster.
#[derive(Clone, Debug, PartialEq)]
pub enum Auth {
    None,
    /// The encoded (base64 `id:key`) API key.
    ApiKey(Secret),
    Basic {
        username: String,
        password: Secret,
    },
}

/// Validated connection settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionSettings {
    /// Parsed node URLs, each ending in `/` so that API paths join under any
    /// path prefix (a proxy at `https://host/es/`).
    pub urls: Vec<elasticsearch::http::Url>,
    pub auth: Auth,
    pub ca_cert: Option<PathBuf>,
    pub verify_tls: bool,
    pub request_timeout: Duration,
    pub gzip: bool,
}

impl ClusterSettings {
    /// Reads the `ELASTICSEARCH_*` variables through `get` (the process
    /// environment in production, a map in tests). Empty values count as
    /// unset. `ELASTICSEARCH_URL` may list several URLs separated by commas.
    pub fn from_env_with(get: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        ClusterSettings {
            urls: var(ENV_URL).map(|v| {
                v.split(',')
                    .map(|u| u.trim().to_string())
                    .filter(|u| !u.is_empty())
                    .collect()
            }),
            api_key: var(ENV_API_KEY).map(Secret),
            username: var(ENV_USERNAME),
            password: var(ENV_PASSWORD).map(Secret),
            ca_cert: var(ENV_CA_CERT).map(PathBuf::from),
            ..ClusterSettings::default()
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Self {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// Layers `over` on top of `self`: every field `over` sets wins.
    pub fn merge(self, over: ClusterSettings) -> ClusterSettings {
        ClusterSettings {
            urls: over.urls.or(self.urls),
            api_key: over.api_key.or(self.api_key),
            username: over.username.or(self.username),
            password: over.password.or(self.password),
            ca_cert: over.ca_cert.or(self.ca_cert),
            verify_tls: over.verify_tls.or(self.verify_tls),
            request_timeout_secs: over.request_timeout_secs.or(self.request_timeout_secs),
            gzip: over.gzip.or(self.gzip),
        }
    }

    /// Validates the merged settings and applies defaults.
    pub fn resolve(&self) -> Result<ConnectionSettings, SettingsError> {
        let raw_urls = self.urls.clone().unwrap_or_default();
        if raw_urls.is_empty() {
            return Err(SettingsError::NoUrl);
        }
        let mut urls = Vec::with_capacity(raw_urls.len());
        // Credentials written into a URL (`https://user:pass@host`) are taken
        // out of it: URLs are logged and appear in transport errors, so a URL
        // must never carry a password. They become basic auth instead.
        let mut url_credentials: Option<(String, Secret)> = None;
        for raw in raw_urls {
            let mut text = raw.trim().to_string();
            if !text.ends_with('/') {
                text.push('/');
            }
            let url =
                elasticsearch::http::Url::parse(&text).map_err(|e| SettingsError::BadUrl {
                    url: redact_userinfo(&raw),
                    reason: e.to_string(),
                })?;
            if url.scheme() != "http" && url.scheme() != "https" {
                return Err(SettingsError::BadScheme {
                    url: redact_userinfo(&raw),
                    scheme: url.scheme().to_string(),
                });
            }
            let mut url = url;
            if !url.username().is_empty() || url.password().is_some() {
                let user = percent_decode(url.username());
                let pass = Secret(url.password().map(percent_decode).unwrap_or_default());
                // Clearing cannot fail for http(s) URLs, which have a host.
                let _ = url.set_username("");
                let _ = url.set_password(None);
                match &url_credentials {
                    Some((u, p)) if *u != user || *p != pass => {
                        return Err(SettingsError::UrlCredentialsDiffer)
                    }
                    _ => url_credentials = Some((user, pass)),
                }
            }
            urls.push(url);
        }
        let (username, password) = match url_credentials {
            None => (self.username.clone(), self.password.clone()),
            Some(_) if self.username.is_some() || self.password.is_some() => {
                return Err(SettingsError::TwoAuthMethods)
            }
            Some((user, pass)) => (Some(user), Some(pass)),
        };
        let auth = match (&self.api_key, &username, &password) {
            (Some(_), Some(_), _) => return Err(SettingsError::TwoAuthMethods),
            (Some(key), None, _) => Auth::ApiKey(key.clone()),
            (None, Some(u), Some(p)) => Auth::Basic {
                username: u.clone(),
                password: p.clone(),
            },
            (None, Some(_), None) => return Err(SettingsError::UserWithoutPassword),
            (None, None, Some(_)) => return Err(SettingsError::PasswordWithoutUser),
            (None, None, None) => Auth::None,
        };
        let request_timeout = match self.request_timeout_secs {
            None => DEFAULT_REQUEST_TIMEOUT,
            Some(s) if s.is_finite() && s > 0.0 && s < 1e9 => Duration::from_secs_f64(s),
            Some(s) => return Err(SettingsError::BadTimeout(s)),
        };
        Ok(ConnectionSettings {
            urls,
            auth,
            ca_cert: self.ca_cert.clone(),
            verify_tls: self.verify_tls.unwrap_or(true),
            request_timeout,
            gzip: self.gzip.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> ClusterSettings {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ClusterSettings::from_env_with(|k| map.get(k).cloned())
    }

    #[test]
    fn debug_never_shows_secrets() {
        let s = env(&[
            (ENV_URL, "http://localhost:9200"),
            (ENV_USERNAME, "elastic"),
            (ENV_PASSWORD, "hunter2-password"),
            (ENV_API_KEY, "c2VjcmV0LWtleQ=="),
        ]);
        let raw = format!("{s:?}");
        assert!(!raw.contains("hunter2-password"), "{raw}");
        assert!(!raw.contains("c2VjcmV0LWtleQ=="), "{raw}");
        assert!(raw.contains("elastic"), "username is not secret: {raw}");
        let only_pw = env(&[
            (ENV_URL, "http://localhost:9200"),
            (ENV_USERNAME, "elastic"),
            (ENV_PASSWORD, "hunter2-password"),
        ]);
        let resolved = format!("{:?}", only_pw.resolve().unwrap());
        assert!(!resolved.contains("hunter2-password"), "{resolved}");
        assert_eq!(format!("{}", Secret::new("x")), "<redacted>");
    }

    #[test]
    fn env_reads_several_urls_and_defaults_apply() {
        let s = env(&[(ENV_URL, "http://a:9200, https://b:9200/es")])
            .resolve()
            .unwrap();
        assert_eq!(s.urls.len(), 2);
        assert_eq!(s.urls[1].as_str(), "https://b:9200/es/");
        assert!(s.verify_tls, "tls verification is on by default");
        assert_eq!(s.request_timeout, DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(s.auth, Auth::None);
    }

    #[test]
    fn later_layer_wins_field_by_field() {
        let file: ClusterSettings = toml::from_str(
            "urls = [\"http://file:9200\"]\nverify_tls = false\nrequest_timeout_secs = 5\n",
        )
        .unwrap();
        let from_env = env(&[(ENV_URL, "http://env:9200")]);
        let merged = file.merge(from_env).resolve().unwrap();
        assert_eq!(merged.urls[0].host_str(), Some("env"));
        assert!(!merged.verify_tls);
        assert_eq!(merged.request_timeout, Duration::from_secs(5));
    }

    #[test]
    fn url_credentials_become_basic_auth_and_leave_the_url() {
        let s = env(&[(ENV_URL, "https://ops:p%40ss-Url-9@es:9200/x")])
            .resolve()
            .unwrap();
        assert_eq!(s.urls[0].as_str(), "https://es:9200/x/");
        assert_eq!(
            s.auth,
            Auth::Basic {
                username: "ops".into(),
                password: Secret::new("p@ss-Url-9"),
            }
        );
        assert!(!format!("{s:?}").contains("p%40ss-Url-9"));
        assert_eq!(
            env(&[
                (ENV_URL, "https://ops:pw@es:9200"),
                (ENV_USERNAME, "other"),
                (ENV_PASSWORD, "x")
            ])
            .resolve()
            .unwrap_err(),
            SettingsError::TwoAuthMethods
        );
        assert_eq!(
            env(&[(ENV_URL, "https://a:pw1@es1:9200,https://a:pw2@es2:9200")])
                .resolve()
                .unwrap_err(),
            SettingsError::UrlCredentialsDiffer
        );
    }

    #[test]
    fn bad_url_errors_do_not_echo_a_password() {
        let err = env(&[(ENV_URL, "https://ops:Leak-Me-42@[bad/x")])
            .resolve()
            .unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("Leak-Me-42"), "{text}");
        assert!(text.contains("https://<redacted>@[bad/x"), "{text}");
        let err = env(&[(ENV_URL, "ftp://ops:Leak-Me-42@host")])
            .resolve()
            .unwrap_err();
        assert!(!err.to_string().contains("Leak-Me-42"), "{err}");
        assert_eq!(redact_userinfo("http://host/a@b"), "http://host/a@b");
        assert_eq!(percent_decode("a%2"), "a%2");
    }

    #[test]
    fn invalid_settings_are_errors() {
        assert_eq!(env(&[]).resolve().unwrap_err(), SettingsError::NoUrl);
        assert!(matches!(
            env(&[(ENV_URL, "ftp://x")]).resolve().unwrap_err(),
            SettingsError::BadScheme { .. }
        ));
        assert!(matches!(
            env(&[(ENV_URL, "http://[bad")]).resolve().unwrap_err(),
            SettingsError::BadUrl { .. }
        ));
        assert_eq!(
            env(&[(ENV_URL, "http://x"), (ENV_USERNAME, "u")])
                .resolve()
                .unwrap_err(),
            SettingsError::UserWithoutPassword
        );
        assert_eq!(
            env(&[
                (ENV_URL, "http://x"),
                (ENV_USERNAME, "u"),
                (ENV_API_KEY, "k")
            ])
            .resolve()
            .unwrap_err(),
            SettingsError::TwoAuthMethods
        );
        let mut s = env(&[(ENV_URL, "http://x")]);
        s.request_timeout_secs = Some(-1.0);
        assert_eq!(s.resolve().unwrap_err(), SettingsError::BadTimeout(-1.0));
    }
}
