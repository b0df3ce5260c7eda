//! `enginehost`: parse arguments, run the subcommand, turn its result into an exit
//! status (in one place, `cli::exit_code`).

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Args::parse();
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
