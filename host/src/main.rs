//! `enginehost`: parse arguments, run the subcommand, turn its result into an exit
//! status (in one place, `cli::exit_code`). Operator logs go to stderr through
//! `tracing`; `ENGINEHOST_LOG` filters them (default `warn`; e.g. `info`,
//! `enginehost=debug`).

mod cli;

use clap::Parser;

fn main() {
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
