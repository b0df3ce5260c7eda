//! `enginehost`: parse arguments, run the subcommand, turn its result into an exit
//! status (in one place, `cli::exit_code`). Operator logs go to stderr through
//! `tracing`; `ENGINEHOST_LOG` filters them (default `warn`; e.g. `info`,
//! `enginehost=debug`).

mod cli;

use clap::Parser;

fn main() {
    quiet_on_broken_pipe();
    // Installed as `enginehost-worker` (worker-runner's `worker.path`, which it runs
    // as `<path> run --config FILE --with-worker-runner`), it is `enginehost worker`.
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked_as = argv.first().map(std::path::Path::new).and_then(|p| p.file_name());
    if invoked_as.is_some_and(|n| n == "enginehost-worker") {
        argv.insert(1, "worker".into());
    }
    let args = cli::Args::parse_from(argv);
    let filter = tracing_subscriber::EnvFilter::try_from_env("ENGINEHOST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(args.default_log_level()));
    // Colours only on a terminal: a service's log goes to a file or the journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let to_runner = args
        .with_worker_runner()
        .then_some(enginehost::worker::taskcluster::runner::RunnerLogLayer);
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(ansi),
        )
        .with(to_runner)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            std::process::exit(3);
        }
    };
    let code = runtime.block_on(cli::run(args));
    std::process::exit(code);
}

/// `enginehost plugins | head`: once the reader is gone, a print fails with
/// EPIPE and `println!` panics. Exit quietly with 141 (128 + SIGPIPE, what a
/// shell reports for a tool killed by SIGPIPE) instead of printing a panic. Not
/// SIGPIPE's default action itself: that would also kill the process on a write
/// to a closed socket (a registry, dockerd, a task's endpoint).
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
