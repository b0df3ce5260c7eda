//! `cargo bench`: the full `enginehost bench` (every figure, full sizes), one
//! `name: value` line per figure. See `enginehost::bench` and docs/benchmarks.md.

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let options = enginehost::bench::Options {
        quick: std::env::args().any(|a| a == "--quick"),
        scratch: std::env::temp_dir().join(format!("enginehost-bench-{}", std::process::id())),
        only: None,
        docker_socket: enginehost::bench::docker_socket(None),
        docker_image: None,
        python_engine: std::env::var_os("ENGINEHOST_PYTHON_ENGINE").map(Into::into),
    };
    enginehost::bench::run(&options, |f| println!("{f}"))
        .await
        .expect("the benchmark runs");
}
