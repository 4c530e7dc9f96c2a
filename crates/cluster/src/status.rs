//! The API server's answers, printed for people: the `Status` message once, with each field
//! path and cause, long values shortened and control characters escaped. Never a `Debug` dump.

use std::fmt;

use kube::core::Status;

/// Values longer than this many characters are shortened with an ellipsis.
pub const MAX_VALUE: usize = 200;

/// An error from the API server (or from reaching it), displayed readably.
///
/// `kube::Error::Api` prints `ApiError: MESSAGE: REASON (Status { ... })`; this prints the
/// message alone, and has no further source, so an error chain never repeats it.
pub struct ServerError(kube::Error);

impl ServerError {
    /// The `Status` the server answered with, if it answered.
    pub fn status(&self) -> Option<&Status> {
        match &self.0 {
            kube::Error::Api(s) => Some(s),
            _ => None,
        }
    }

    /// The HTTP code of the server's answer, if it answered.
    pub fn code(&self) -> Option<u16> {
        self.status().map(|s| s.code)
    }

    /// The underlying client error.
    pub fn inner(&self) -> &kube::Error {
        &self.0
    }

    /// One field error per `details.causes` entry: (field path, message).
    pub fn causes(&self) -> Vec<(String, String)> {
        self.status()
            .and_then(|s| s.details.as_ref())
            .map(|d| {
                d.causes
                    .iter()
                    .map(|c| (c.field.clone(), c.message.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl From<kube::Error> for ServerError {
    fn from(e: kube::Error) -> Self {
        ServerError(e)
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe(&self.0))
    }
}

/// A client error as one readable line: the server's message (see [`readable`]), or what went
/// wrong reaching it.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => readable(s),
        other => clean(&other.to_string(), 4 * MAX_VALUE),
    }
}

impl fmt::Debug for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerError({self})")
    }
}

impl std::error::Error for ServerError {}

/// The message of a `Status`, readably: an `Invalid` one is rebuilt from its causes (field:
/// cause, long values shortened); any other is its message, shortened.
pub fn readable(s: &Status) -> String {
    let causes: Vec<String> = s
        .details
        .as_ref()
        .map(|d| {
            d.causes
                .iter()
                .filter(|c| !c.field.is_empty())
                .map(|c| format!("{}: {}", c.field, cause_text(&c.message)))
                .collect()
        })
        .unwrap_or_default();
    let message = if s.message.is_empty() {
        format!("{} ({})", s.reason, s.code)
    } else {
        s.message.clone()
    };
    match message.split_once(" is invalid: ") {
        Some((subject, _)) if !causes.is_empty() => clean(
            &format!(
                "{} is invalid: {}",
                shorten(subject, MAX_VALUE),
                causes.join("; ")
            ),
            usize::MAX,
        ),
        _ => clean(first_line(&message), 4 * MAX_VALUE),
    }
}

/// `Invalid value: VALUE: detail` with VALUE shortened; other causes to their first line.
pub(crate) fn cause_text(message: &str) -> String {
    let message = first_line(message);
    if let Some(rest) = message.strip_prefix("Invalid value: ") {
        if let Some((value, detail)) = rest.rsplit_once(": ") {
            return format!("Invalid value: {}: {detail}", shorten(value, MAX_VALUE));
        }
    }
    shorten(message, 2 * MAX_VALUE)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// At most `max` characters, with `…` when cut.
pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

/// Shortened, and with control characters escaped (the text comes from outside).
fn clean(s: &str, max: usize) -> String {
    let s = shorten(s, max);
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::response::{StatusCause, StatusDetails};

    fn invalid(value_len: usize) -> Status {
        let value = format!("{{\"spec\":\"{}\"}}", "x".repeat(value_len));
        let body = format!("Invalid value: {value}: field is immutable");
        Status {
            code: 422,
            reason: "Invalid".into(),
            message: format!("Job.batch \"m\" is invalid: spec.template: {body}"),
            details: Some(StatusDetails {
                name: "m".into(),
                kind: "Job".into(),
                causes: vec![StatusCause {
                    reason: "FieldValueInvalid".into(),
                    message: body,
                    field: "spec.template".into(),
                }],
                group: "batch".into(),
                uid: String::new(),
                retry_after_seconds: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn an_invalid_status_prints_field_and_cause_once_with_long_values_shortened() {
        let e = ServerError::from(kube::Error::Api(Box::new(invalid(5000))));
        let text = e.to_string();
        assert!(
            text.starts_with(
                "Job.batch \"m\" is invalid: spec.template: Invalid value: {\"spec\":\"xxx"
            ),
            "{text}"
        );
        assert!(text.ends_with("…: field is immutable"), "{text}");
        assert!(text.len() < 400, "{text}");
        assert_eq!(text.matches("is invalid").count(), 1);
        assert!(!format!("{e:?}").contains("Status {"));
        assert!(std::error::Error::source(&e).is_none());
    }

    #[test]
    fn a_short_value_is_kept_whole_and_control_characters_are_escaped() {
        let e = ServerError::from(kube::Error::Api(Box::new(invalid(3))));
        assert!(e
            .to_string()
            .contains("{\"spec\":\"xxx\"}: field is immutable"));
        let s = Status {
            code: 403,
            reason: "Forbidden".into(),
            message: "secrets is forbidden: User \"a\u{1b}[31m\" cannot list".into(),
            ..Default::default()
        };
        assert!(!readable(&s).contains('\u{1b}'));
    }
}
