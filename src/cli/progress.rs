//! Progress display shared by the commands that wait on the mount (`pin`, `unmount`): a bar
//! on a terminal, plain lines otherwise (logs, scripts, CI), throttled so they stay readable.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// When a plain line is printed again.
pub struct LineRule {
    /// A changed line waits at least this long after the previous one.
    pub min_gap: Duration,
    /// An unchanged line is repeated after this long (a sign of life), if set.
    pub heartbeat: Option<Duration>,
}

pub struct Progress {
    bar: Option<ProgressBar>,
    rule: LineRule,
    last_line: Option<(String, Instant)>,
}

impl Progress {
    pub fn new(rule: LineRule) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            if let Ok(style) =
                ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {wide_msg}")
            {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            rule,
            last_line: None,
        }
    }

    /// `done` of `total` bytes; `bar_text` beside the bar, `line` as the plain line.
    pub fn show(&mut self, done: u64, total: u64, bar_text: String, line: String) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done.min(total));
            bar.set_message(bar_text);
            return;
        }
        let due = match &self.last_line {
            None => true,
            Some((last, at)) => {
                let waited = at.elapsed();
                (*last != line && waited >= self.rule.min_gap)
                    || self.rule.heartbeat.is_some_and(|h| waited >= h)
            }
        };
        if due {
            eprintln!("{line}");
            self.last_line = Some((line, Instant::now()));
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
