//! The `enginehost` command line: one file per subcommand. Errors become exit
//! statuses here: 2 for bad input (task file, engine name, payload), 3 for
//! everything else (operator config, plugins, internal errors).

mod new;
mod plugins;
mod run;
mod test;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Runs CI tasks on engines shipped as WebAssembly components.
#[derive(Parser)]
#[command(name = "enginehost", version, about)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one task: validate, build, start, stream the log, wait, extract artifacts.
    /// Exit status: 0 success, 1 failure, 2 malformed payload or task file,
    /// 3 internal error, 130 cancelled (Ctrl-C).
    Run(run::RunArgs),
    /// Lists the engines available (built in and from the plugin directory) and the
    /// plugin files that were rejected, with the reason.
    Plugins(PluginsArgs),
    /// Runs the conformance suite (every enginetest case) against an engine; one
    /// line per subtest, then `N passed, N failed, N skipped`. Exit status 1 when
    /// anything failed.
    Test(test::TestArgs),
    /// Scaffolds a new engine crate that builds and passes `enginehost test` as is.
    New(new::NewArgs),
}

/// Where plugins come from.
#[derive(clap::Args, Clone)]
pub struct PluginsArgs {
    /// Plugin directory: every `*.wasm` in it is a candidate engine [default:
    /// $ENGINEHOST_PLUGINS, else /var/lib/enginehost/plugins]
    #[arg(long, value_name = "DIR")]
    plugins: Option<PathBuf>,
}

/// Bad input from the user: exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Runs the command; returns the exit status.
pub async fn run(args: Args) -> i32 {
    let result = match args.command {
        Command::Run(a) => run::run(a).await,
        Command::Plugins(a) => plugins::run(a),
        Command::Test(a) => test::run(a).await,
        Command::New(a) => new::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<BadInput>().is_some() { 2 } else { 3 }
        }
    }
}
