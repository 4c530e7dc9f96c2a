//! indicatif progress bars behind [`airlift_bundle::Progress`].

use std::collections::HashMap;
use std::sync::Mutex;

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
        let template = if known {
            "{spinner} {prefix:30!} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}"
        } else {
            "{spinner} {prefix:30!} {bytes} {binary_bytes_per_sec}"
        };
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ")
    }
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
        let bar = self.multi.add(bar.with_prefix(label.to_string()));
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

/// Like [`progress_for`], with a bar named `label` adding up everything but `exclude`.
pub fn progress_with_total(no_progress: bool, label: &str, exclude: &[&str]) -> Box<dyn Progress> {
    if no_progress || !console::Term::stderr().is_term() {
        Box::new(NoProgress)
    } else {
        Box::new(BarProgress::with_total(label, exclude))
    }
}

/// Bars when stderr is a terminal and `--no-progress` was not given; nothing otherwise.
pub fn progress_for(no_progress: bool) -> Box<dyn Progress> {
    if no_progress || !console::Term::stderr().is_term() {
        Box::new(NoProgress)
    } else {
        Box::new(BarProgress::new())
    }
}
