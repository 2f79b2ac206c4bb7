//! How far a copy has got: a progress bar (`indicatif`) when standard error is a terminal, else
//! a log line each time a batch passes a tenth of the sessions there were when it began (one
//! line for a batch that passes several: a copy of one batch says one line).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A copy's progress, as sessions read out of about `total`.
pub(crate) enum Progress {
    Bar(ProgressBar),
    Lines { total: u64, tenths_told: u64 },
}

impl Progress {
    /// A bar when standard error is a terminal, log lines otherwise.
    pub(crate) fn new(total: u64) -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:40} {pos}/{len} sessions read, {per_sec}, {eta} left",
            ) {
                bar.set_style(style);
            }
            Self::Bar(bar)
        } else {
            Self::lines(total)
        }
    }

    /// Log lines, whatever standard error is.
    pub(crate) fn lines(total: u64) -> Self {
        Self::Lines {
            total,
            tenths_told: 0,
        }
    }

    /// `read` sessions read so far; returns the lines logged (for tests).
    pub(crate) fn advance(&mut self, read: u64) -> Vec<String> {
        match self {
            Self::Bar(bar) => {
                if read > bar.length().unwrap_or(0) {
                    bar.set_length(read);
                }
                bar.set_position(read);
                Vec::new()
            }
            Self::Lines { total, tenths_told } => {
                let total = (*total).max(1);
                let tenths = (read.saturating_mul(10) / total).min(10);
                if tenths <= *tenths_told {
                    return Vec::new();
                }
                // One line for what this batch read, however many tenths it passed.
                *tenths_told = tenths;
                let line = format!(
                    "copy: {}% ({read} of about {total} sessions read)",
                    tenths * 10
                );
                log::info!("{line}");
                vec![line]
            }
        }
    }

    /// Ends the bar, if there is one.
    pub(crate) fn finish(&self) {
        if let Self::Bar(bar) = self {
            bar.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_tenth_and_none_twice() {
        let mut progress = Progress::lines(1_000);
        assert!(progress.advance(50).is_empty());
        assert_eq!(
            progress.advance(100),
            vec!["copy: 10% (100 of about 1000 sessions read)"]
        );
        assert!(progress.advance(150).is_empty());
        // A big batch passes several tenths at once: one line says where it got.
        assert_eq!(
            progress.advance(420),
            vec!["copy: 40% (420 of about 1000 sessions read)"]
        );
        assert_eq!(progress.advance(1_000).len(), 1);
        // A copy of one session in one batch: one line.
        assert_eq!(Progress::lines(1).advance(1).len(), 1);
        // More than the estimate (sessions made meanwhile) tells nothing more.
        assert!(progress.advance(1_200).is_empty());
    }
}
