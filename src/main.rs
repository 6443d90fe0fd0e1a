//! The `vigil` command line: parses arguments, sets up logging, and hands
//! the command to [`cli`], which calls the library and prints.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use vigil::config::Settings;

/// mimalloc: a pull normalises records on one thread and frees them on
/// another, millions of small strings a run; glibc's malloc spent about a
/// fifth of a CSV pull's CPU on that (cross-thread frees, and consolidating
/// their chunks whenever a file's buffer was allocated).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keeps memory the process freed for its own reuse instead of handing it
/// back to the system (mimalloc's `purge_delay` of -1).
///
/// vigil's runs are batch jobs that allocate and free gigabytes in phases
/// (a match run: roster, index, candidate pairs, explanations). By default
/// mimalloc returns freed pages to the kernel after 10 ms (`MADV_DONTNEED`,
/// about 6 GB over a 10M-pensioner `match --full`), and every later
/// allocation on them is a fresh page the kernel must zero again; on the
/// virtual machines this runs on a fresh page costs about a second per GiB.
/// Kept, the run no longer re-zeroes those pages, for 0.1-0.5 GiB more peak
/// memory; its wall-clock gain was inside our machines' noise in an
/// interleaved A/B at 10M (median 46.6 s -> 44.1 s, commit a361b78;
/// BENCHMARKS.md, History). The `MIMALLOC_PURGE_DELAY` environment variable
/// is read before `main`; this overrides it.
fn keep_freed_memory() {
    // `mi_option_purge_delay` in mimalloc's include/mimalloc.h (the 16th
    // option of `mi_option_e`, in v2 and v3 alike); libmimalloc-sys is
    // pinned in Cargo.toml so that the number cannot drift.
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets one integer option; mimalloc reads it when it next
    // considers purging.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = cli::Cli::parse();
    let settings = match Settings::load(cli.config.as_deref(), cli.database_url.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings.log.level, cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli.command, settings)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Logs go to standard error, filtered by `VIGIL_LOG` if it is set, else by
/// the level `-v` asks for (`-v` info, `-vv` debug, `-vvv` trace), else by
/// `log.level` (`warn` unless set): a plain run prints its result and its
/// progress bar, and of its log only the warnings and errors.
fn init_logging(configured: &str, verbose: u8) {
    let level = match verbose {
        0 => configured,
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(vigil::config::DEFAULT_LOG_LEVEL));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal: a log piped into a file
        // or another program carries no escape codes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
