//! Progress behind [`airlift_bundle::Progress`]: indicatif bars on a terminal, plain lines
//! every few seconds when stderr is a log (CI), so a long install is never silent.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use airlift_bundle::{NoProgress, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress drawn as one bar per unit of work, with bytes, rate and ETA.
pub struct BarProgress {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
    /// A bar summing every unit of work but the excluded ones, with their totals as its length.
    total: Option<(ProgressBar, Vec<String>)>,
}

impl BarProgress {
    /// Bars drawn on stderr.
    pub fn new() -> Self {
        Self {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
            total: None,
        }
    }

    /// Bars on stderr plus one named `label` at the top that adds up every unit of work except
    /// those named in `exclude` (bytes, rate, and an ETA over everything started so far).
    pub fn with_total(label: &str, exclude: &[&str]) -> Self {
        let mut p = Self::new();
        let bar = p.multi.add(
            ProgressBar::new(0)
                .with_style(Self::style(true))
                .with_prefix(label.to_string()),
        );
        p.total = Some((bar, exclude.iter().map(ToString::to_string).collect()));
        p
    }

    fn counted(&self, label: &str) -> Option<&ProgressBar> {
        self.total
            .as_ref()
            .filter(|(_, exclude)| !exclude.iter().any(|e| e == label))
            .map(|(bar, _)| bar)
    }

    fn style(known: bool) -> ProgressStyle {
        let (prefix, bar) = widths(terminal_columns());
        let template = match (known, bar) {
            (true, Some(bar)) => format!(
                "{{spinner}} {{prefix:{prefix}!}} [{{bar:{bar}}}] {{bytes}}/{{total_bytes}} \
                 {{binary_bytes_per_sec}} ETA {{eta}}"
            ),
            (true, None) => format!("{{spinner}} {{prefix:{prefix}!}} {{percent}}% {{bytes}}"),
            (false, _) => {
                format!("{{spinner}} {{prefix:{prefix}!}} {{bytes}} {{binary_bytes_per_sec}}")
            }
        };
        ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ")
    }
}

/// The terminal's width in columns (80 when unknown).
fn terminal_columns() -> usize {
    let (_, cols) = console::Term::stderr().size();
    if cols == 0 {
        80
    } else {
        usize::from(cols)
    }
}

/// The label and bar widths that keep one bar on one line of `cols` columns (a wrapped bar
/// leaves redraw garbage): no bar at all below 60 columns. The rest of a line (spinner, bytes,
/// total, rate, ETA) takes about 50 columns.
fn widths(cols: usize) -> (usize, Option<usize>) {
    let prefix = (cols / 4).clamp(12, 32);
    let room = cols.saturating_sub(prefix + 52);
    if cols < 60 || room < 8 {
        return (prefix.min(cols.saturating_sub(16)).max(8), None);
    }
    (prefix, Some(room.min(30)))
}

/// A label that fits `width` columns and keeps its distinctive part: an image reference loses
/// its registry host first (`registry.example.com/acme/web:1.2` → `acme/web:1.2`), then its
/// leading path segments, then the middle of what is left; a digest is shortened to 12 hex digits.
pub fn short_label(label: &str, width: usize) -> String {
    let mut text = label.to_string();
    if let Some(at) = text.find("@sha256:") {
        let end = (at + 8 + 12).min(text.len());
        text.truncate(end);
    }
    if text.chars().count() <= width {
        return text;
    }
    let mut parts: Vec<&str> = text.split('/').collect();
    while parts.len() > 1 && parts.join("/").chars().count() > width {
        parts.remove(0);
    }
    let tail = parts.join("/");
    let n = tail.chars().count();
    if n <= width {
        return tail;
    }
    // Keep the end (tag or digest) and the start of the name.
    let keep_end = width.saturating_sub(1) / 2;
    let keep_start = width.saturating_sub(1) - keep_end;
    let start: String = tail.chars().take(keep_start).collect();
    let end: String = tail.chars().skip(n - keep_end).collect();
    format!("{start}…{end}")
}

impl Default for BarProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for BarProgress {
    fn start(&self, label: &str, total: Option<u64>) {
        if let (Some(sum), Some(n)) = (self.counted(label), total) {
            sum.inc_length(n);
        }
        let bar = match total {
            Some(t) => ProgressBar::new(t).with_style(Self::style(true)),
            None => ProgressBar::no_length().with_style(Self::style(false)),
        };
        let (width, _) = widths(terminal_columns());
        let bar = self.multi.add(bar.with_prefix(short_label(label, width)));
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(label.to_string(), bar);
        }
    }

    fn advance(&self, label: &str, bytes: u64) {
        if let Some(sum) = self.counted(label) {
            sum.inc(bytes);
        }
        if let Ok(bars) = self.bars.lock() {
            if let Some(bar) = bars.get(label) {
                bar.inc(bytes);
            }
        }
    }

    fn finish(&self, label: &str) {
        if let Ok(mut bars) = self.bars.lock() {
            if let Some(bar) = bars.remove(label) {
                bar.finish_and_clear();
            }
        }
    }

    fn message(&self, msg: &str) {
        let _ = self.multi.println(msg);
    }
}

/// Progress as plain lines on stderr, for logs: every status message as it comes, and a
/// summary of the byte-counted work (items done, bytes, rate) at most every few seconds
/// (`AIRLIFT_PROGRESS_INTERVAL` seconds, default 5), and when the last item finishes.
pub struct LineProgress {
    state: Mutex<LineState>,
    interval: Duration,
}

struct LineState {
    started: Instant,
    last_line: Instant,
    items: usize,
    finished: usize,
    done: u64,
    total: u64,
    printed: bool,
}

impl LineProgress {
    /// Lines on stderr, at the interval `AIRLIFT_PROGRESS_INTERVAL` asks for (default 5 s).
    pub fn new() -> Self {
        let secs = std::env::var("AIRLIFT_PROGRESS_INTERVAL")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(5);
        let now = Instant::now();
        Self {
            state: Mutex::new(LineState {
                started: now,
                last_line: now,
                items: 0,
                finished: 0,
                done: 0,
                total: 0,
                printed: false,
            }),
            interval: Duration::from_secs(secs),
        }
    }

    fn line(text: &str) {
        let _ = writeln!(
            std::io::stderr().lock(),
            "{}",
            crate::output::escape_control(text)
        );
    }

    /// The summary line: `progress: 3/7 items, 12.0 MiB/45.0 MiB (26%), 5.1 MiB/s`.
    fn summary(st: &LineState) -> String {
        let secs = st.started.elapsed().as_secs_f64().max(0.001);
        let rate = (st.done as f64 / secs) as u64;
        let pct = (st.done * 100).checked_div(st.total).unwrap_or(100);
        format!(
            "progress: {}/{} items, {}/{} ({pct}%), {}/s",
            st.finished,
            st.items,
            crate::output::human_bytes(st.done),
            crate::output::human_bytes(st.total),
            crate::output::human_bytes(rate),
        )
    }

    fn maybe_summary(&self, force: bool) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        // A run shorter than one interval stays silent, even at its end: quick commands
        // (`inspect` of a small bundle) do not fill logs with a single "100%" line.
        let due = st.last_line.elapsed() >= self.interval;
        if st.items == 0 || !(due || force && st.printed) {
            return;
        }
        st.printed = true;
        st.last_line = Instant::now();
        Self::line(&Self::summary(&st));
    }
}

impl Default for LineProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for LineProgress {
    fn start(&self, _label: &str, total: Option<u64>) {
        if let Ok(mut st) = self.state.lock() {
            st.items += 1;
            st.total += total.unwrap_or(0);
        }
    }

    fn advance(&self, _label: &str, bytes: u64) {
        if let Ok(mut st) = self.state.lock() {
            st.done += bytes;
        }
        self.maybe_summary(false);
    }

    fn finish(&self, _label: &str) {
        let all = match self.state.lock() {
            Ok(mut st) => {
                st.finished += 1;
                st.finished == st.items
            }
            Err(_) => false,
        };
        self.maybe_summary(all);
    }

    fn message(&self, msg: &str) {
        Self::line(msg);
    }
}

/// Like [`progress_for`], with a bar named `label` adding up everything but `exclude`.
pub fn progress_with_total(no_progress: bool, label: &str, exclude: &[&str]) -> Box<dyn Progress> {
    if no_progress {
        Box::new(NoProgress)
    } else if !console::Term::stderr().is_term() {
        Box::new(LineProgress::new())
    } else {
        Box::new(BarProgress::with_total(label, exclude))
    }
}

/// Bars when stderr is a terminal, plain progress lines when it is a log, nothing with
/// `--no-progress` (or a machine `--output`, which callers pass as `no_progress`).
pub fn progress_for(no_progress: bool) -> Box<dyn Progress> {
    if no_progress {
        Box::new(NoProgress)
    } else if !console::Term::stderr().is_term() {
        Box::new(LineProgress::new())
    } else {
        Box::new(BarProgress::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keep_the_repository_tail_and_tag() {
        assert_eq!(
            short_label("registry.example.com/airlift-demo/web:1.2.3", 30),
            "airlift-demo/web:1.2.3"
        );
        assert_eq!(
            short_label("registry.example.com/a/b/c/web:1.2", 12),
            "b/c/web:1.2"
        );
        assert_eq!(
            short_label("registry.example.com/a/b/c/web:1.2", 8),
            "web:1.2"
        );
        assert_eq!(short_label("short", 30), "short");
        let digest = format!("reg.io/acme/api@sha256:{}", "ab".repeat(32));
        assert_eq!(
            short_label(&digest, 40),
            "reg.io/acme/api@sha256:abababababab"
        );
        let short = short_label(&digest, 20);
        assert_eq!(short.chars().count(), 20, "{short}");
        assert!(
            short.starts_with("api@sha256") && short.ends_with("abab"),
            "{short}"
        );
        let long = "a-very-long-repository-name-without-slashes:v1";
        let s = short_label(long, 20);
        assert_eq!(s.chars().count(), 20, "{s}");
        assert!(s.starts_with("a-very") && s.ends_with(":v1"), "{s}");
    }

    #[test]
    fn bars_fit_the_terminal() {
        for cols in [40usize, 60, 80, 100, 200] {
            let (prefix, bar) = widths(cols);
            let used = prefix + bar.unwrap_or(0) + if bar.is_some() { 52 } else { 16 };
            assert!(used <= cols, "{cols} columns: prefix {prefix}, bar {bar:?}");
        }
        assert!(widths(80).1.is_some(), "80 columns still show a bar");
        assert_eq!(widths(50).1, None);
    }
}
