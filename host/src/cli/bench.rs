//! `enginehost bench [--quick]`: the benchmark, one `name: value` line per figure
//! (see `enginehost::bench`); exit status 1 when a figure misses its target.

use enginehost::bench::{self, Options};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Smaller sizes and fewer rounds (under a minute).
    #[arg(long)]
    quick: bool,
    /// Only the figures of one group (load, lifecycle, limits, usage, concurrent,
    /// throughput, native, docker).
    #[arg(long, value_name = "GROUP")]
    only: Option<String>,
    /// The dockerd socket the docker figures are measured on (default:
    /// $ENGINEHOST_DOCKER_SOCKET; without one, no docker figures).
    #[arg(long, value_name = "PATH")]
    docker_socket: Option<std::path::PathBuf>,
    /// The image of the docker figures (it must be on that dockerd).
    #[arg(long, value_name = "IMAGE")]
    docker_image: Option<String>,
    /// A Python engine (built by `enginehost new --lang python`'s build.sh) whose
    /// compile and cached load are measured too (load.python_*).
    #[arg(long, value_name = "FILE.wasm")]
    python_engine: Option<std::path::PathBuf>,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<i32> {
    let scratch = std::env::temp_dir().join(format!("enginehost-bench-{}", std::process::id()));
    let options = Options {
        quick: args.quick,
        scratch,
        only: args.only,
        docker_socket: bench::docker_socket(args.docker_socket),
        docker_image: args.docker_image,
        python_engine: args.python_engine,
    };
    let figures = bench::run(&options, |f| println!("{f}")).await?;
    Ok(if figures.iter().all(|f| f.met()) { 0 } else { 1 })
}
