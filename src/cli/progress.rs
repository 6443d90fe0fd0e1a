//! The progress bars and spinners every long command draws on a terminal
//! (indicatif hides them when stderr is not one): one constructor per kind,
//! so a roster import looks the same in `vigil roster import` and in
//! `vigil demo`.

use std::path::Path;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use vigil::ingest::connectors::PullProgress;

/// The size of a file about to be imported, for its bar.
pub fn file_len(file: &Path) -> Result<u64> {
    Ok(std::fs::metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len())
}

/// A bar over the bytes of a file being imported.
pub fn import_bar(bytes: u64) -> ProgressBar {
    bar(
        bytes,
        "{spinner} importing [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    )
}

/// A bar over the pensioners being generated.
pub fn generate_bar(pensioners: u64) -> ProgressBar {
    bar(
        pensioners,
        "{spinner} generating [{bar:40}] {human_pos}/{human_len} pensioners ({per_sec}, {eta})",
    )
}

fn bar(len: u64, template: &str) -> ProgressBar {
    ProgressBar::new(len).with_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    )
}

/// A spinner that says which source is being pulled and how far.
pub fn pull_spinner() -> ProgressBar {
    ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} pulling {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    )
}

pub fn show_pull_progress(bar: &ProgressBar, p: &PullProgress<'_>) {
    bar.set_message(format!(
        "{}: {} records, {} pages, {} files",
        p.source, p.read, p.pages, p.files
    ));
    bar.tick();
}

/// A spinner that turns on its own while work that reports no progress runs.
pub fn ticking_spinner(template: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}
