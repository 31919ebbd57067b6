//! Progress of a benchmark run on stderr: a progress bar (indicatif) when stderr is a terminal,
//! plain lines otherwise (CI logs, `2> file`), so that results on stdout stay clean.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// Where progress goes.
pub struct Progress {
    /// The bar, on a terminal.
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Progress of a run whose number of jobs is not known yet ([`Progress::set_total`]).
    pub fn on_stderr() -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} jobs  {elapsed_precise}  {msg}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        Progress { bar }
    }

    /// The run has `total` jobs.
    pub fn set_total(&self, total: usize) {
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64);
        }
    }

    /// A line of its own (setup, a job's result): above the bar, or on stderr.
    pub fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    /// Job `label` starts: the bar's message, or the start of a plain line that
    /// [`Progress::finish_job`] completes.
    pub fn start_job(&self, label: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(label.to_string()),
            None => eprint!("{label} ... "),
        }
    }

    /// The job started last ended with `result`.
    pub fn finish_job(&self, label: &str, result: &str) {
        match &self.bar {
            Some(bar) => {
                bar.println(format!("{label}: {result}"));
                bar.inc(1);
            }
            None => eprintln!("{result}"),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
