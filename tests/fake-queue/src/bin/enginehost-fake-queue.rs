//! Runs one fake queue for manual checks: prints its root URL and an admin client's credentials
//! (as `TASKCLUSTER_*` lines), then serves until killed.
//!
//! Usage: `enginehost-fake-queue [--port N] [--claim-work-timeout SECS] [--claim-timeout SECS]
//! [--client ID:TOKEN:SCOPE,SCOPE...]...`; each `--client` registers a static client (a worker's,
//! with only the scopes a worker needs, say) besides the printed admin.

use enginehost_fake_queue::{FakeQueue, FakeQueueOptions};
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut options = FakeQueueOptions::default();
    let mut clients = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || -> anyhow::Result<u64> {
            let v = args.next().ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
            Ok(v.parse()?)
        };
        match flag.as_str() {
            "--port" => options.port = u16::try_from(value()?)?,
            "--claim-work-timeout" => options.claim_work_timeout = Duration::from_secs(value()?),
            "--claim-timeout" => options.claim_timeout = Duration::from_secs(value()?),
            "--client" => {
                let spec = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--client needs ID:TOKEN:SCOPES"))?;
                let mut parts = spec.splitn(3, ':');
                let (Some(id), Some(token), scopes) = (parts.next(), parts.next(), parts.next()) else {
                    anyhow::bail!("--client {spec}: expected ID:TOKEN:SCOPE,SCOPE...");
                };
                let scopes: Vec<String> = scopes
                    .unwrap_or("")
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                clients.push((id.to_string(), token.to_string(), scopes));
            }
            "-h" | "--help" => {
                println!(
                    "usage: enginehost-fake-queue [--port N] [--claim-work-timeout SECS] [--claim-timeout SECS] \
                     [--client ID:TOKEN:SCOPE,SCOPE...]..."
                );
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let queue = FakeQueue::try_start(options).await?;
    let token = enginehost_fake_queue::tempcreds::random_token(33);
    queue.add_client("static/admin", &token, ["*"]);
    for (id, token, scopes) in clients {
        queue.add_client(&id, &token, scopes);
    }
    println!("{}", queue.root_url());
    println!("TASKCLUSTER_ROOT_URL={}", queue.root_url());
    println!("TASKCLUSTER_CLIENT_ID=static/admin");
    println!("TASKCLUSTER_ACCESS_TOKEN={token}");
    std::future::pending::<()>().await;
    Ok(())
}
