//! Loading and validating rule files (detection-rules TOML) into `Rule`s.
