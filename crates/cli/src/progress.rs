//! indicatif progress bars behind [`airlift_bundle::Progress`].

use std::collections::HashMap;
use std::sync::Mutex;

use airlift_bundle::{NoProgress, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress drawn as one bar per unit of work, with bytes, rate and ETA.
pub struct BarProgress {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl BarProgress {
    /// Bars drawn on stderr.
    pub fn new() -> Self {
        Self {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
        }
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

/// Bars when stderr is a terminal and `--no-progress` was not given; nothing otherwise.
pub fn progress_for(no_progress: bool) -> Box<dyn Progress> {
    if no_progress || !console::Term::stderr().is_term() {
        Box::new(NoProgress)
    } else {
        Box::new(BarProgress::new())
    }
}
