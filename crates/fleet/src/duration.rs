//! Durations as the fleet file writes them: `30s`, `10m`, `1h30m` (or plain seconds), the way
//! kubectl and helm take them.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written `90s`, `10m`, `1h30m` or `300` (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetDuration(pub Duration);

impl FleetDuration {
    /// Parses `300`, `90s`, `5m`, `2h`, `1h30m`, `1m30s`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Ok(secs) = text.parse::<u64>() {
            return Ok(Self(Duration::from_secs(secs)));
        }
        let bad = || format!("`{text}` is not a duration: write e.g. 300, 90s, 5m or 1h30m");
        let mut total: u64 = 0;
        let mut number = String::new();
        for c in text.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                _ => return Err(bad()),
            };
            let n: u64 = number.parse().map_err(|_| bad())?;
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(bad)?;
            number.clear();
        }
        if !number.is_empty() || text.is_empty() {
            return Err(bad());
        }
        Ok(Self(Duration::from_secs(total)))
    }
}

impl std::fmt::Display for FleetDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0.as_secs();
        match (s / 3600, (s % 3600) / 60, s % 60) {
            (0, 0, sec) => write!(f, "{sec}s"),
            (0, m, 0) => write!(f, "{m}m"),
            (0, m, sec) => write!(f, "{m}m{sec}s"),
            (h, 0, 0) => write!(f, "{h}h"),
            (h, m, sec) => write!(f, "{h}h{m}m{sec}s"),
        }
    }
}

impl Serialize for FleetDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for FleetDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Seconds(s) => Ok(Self(Duration::from_secs(s))),
            Raw::Text(t) => Self::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

impl JsonSchema for FleetDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: `90s`, `10m`, `1h30m`, or a number of seconds.",
            "anyOf": [
                {"type": "string", "pattern": "^([0-9]+[hms])+$|^[0-9]+$"},
                {"type": "integer", "minimum": 0}
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::FleetDuration;
    use std::time::Duration;

    #[test]
    fn durations_read_like_kubectls_and_print_back() {
        for (text, secs) in [("300", 300), ("90s", 90), ("5m", 300), ("1h30m", 5400)] {
            let d = FleetDuration::parse(text).expect(text);
            assert_eq!(d.0, Duration::from_secs(secs), "{text}");
            assert_eq!(FleetDuration::parse(&d.to_string()), Ok(d));
        }
        for bad in ["", "5x", "m", "1.5m", "5m3"] {
            assert!(FleetDuration::parse(bad).is_err(), "{bad}");
        }
    }
}
