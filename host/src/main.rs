//! `enginehost`: parse arguments, run the subcommand, turn its result into an exit
//! status (in one place, `cli::exit_code`). Operator logs go to stderr through
//! `tracing`; `ENGINEHOST_LOG` filters them (default `warn`; e.g. `info`,
//! `enginehost=debug`).

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("ENGINEHOST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(args.default_log_level()));
    // Colours only on a terminal: a service's log goes to a file or the journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
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
