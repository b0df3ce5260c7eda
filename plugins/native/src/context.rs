//! `payload.context`: the host downloads it into the task's home (the bytes never
//! enter the engine); then, as the task's user, `unzip` unpacks a `.zip`, `tar`
//! a `.tar.gz`/`.tgz`/`.tar`, and `gunzip` a `.gz` (a `.tar` coming out of it is
//! untarred too). A plain file stays as it is (the host makes it 0700, the user's).

use enginehost_sdk::caps::files;
use enginehost_sdk::caps::process::{Command, ExitStatus, Output};
use enginehost_sdk::caps::users::TaskUser;
use enginehost_sdk::{Result, TaskContext, malformed};

/// The file name the download gets: the URL's last path segment.
fn file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let after_host = path.splitn(4, '/').nth(3).unwrap_or("");
    let name = after_host.rsplit('/').next().unwrap_or("");
    let name: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-+".contains(*c))
        .collect();
    if name.is_empty() || name.starts_with('.') {
        "context".into()
    } else {
        name
    }
}

/// Runs one unpacking step in the home, as the task's user.
async fn run(context: &TaskContext, user: Option<&TaskUser>, argv: &[&str]) -> Result<()> {
    step(context, user, argv, None, "context", "unpacking the context").await
}

/// Runs one step of preparing the home (`what`: "unpacking the context"), as the
/// task's user, with `stdin`; its stderr goes to the log as `[label] ` lines; a
/// failure is a malformed payload naming the step.
pub(crate) async fn step(
    context: &TaskContext,
    user: Option<&TaskUser>,
    argv: &[&str],
    stdin: Option<Vec<u8>>,
    label: &str,
    what: &str,
) -> Result<()> {
    let mut command = Command::from_argv(argv.iter().map(|s| s.to_string()).collect())?
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .cwd("home")
        .stdout(Output::Null)
        .stderr(Output::TaskLog(format!("[{label}] ")));
    if let Some(bytes) = stdin {
        command = command.stdin_bytes(enginehost_sdk::stream_of(bytes));
    }
    let process = command
        .spawn(context, user)
        .await
        .map_err(|e| malformed(format!("Error {what} with {}: {}", argv[0], e.message())))?;
    let status = process.wait().await;
    process.drained().await;
    match status {
        ExitStatus::Code(0) => Ok(()),
        other => Err(malformed(format!(
            "Error {what}: `{}` failed ({other:?}); see the [{label}] lines above",
            argv.join(" ")
        ))),
    }
}

/// Downloads and unpacks `url` into the home.
pub(crate) async fn fetch(context: &TaskContext, user: Option<&TaskUser>, url: &str) -> Result<()> {
    let name = file_name(url);
    files::download(context, url, &format!("home/{name}"))
        .await
        .map_err(|e| malformed(format!("Error downloading {url}: {}", e.message())))?;
    if name.ends_with(".zip") {
        run(context, user, &["unzip", "-q", "-o", &name]).await
    } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        run(context, user, &["tar", "-xzf", &name]).await
    } else if name.ends_with(".tar") {
        run(context, user, &["tar", "-xf", &name]).await
    } else if let Some(stem) = name.strip_suffix(".gz") {
        run(context, user, &["gunzip", "-f", &name]).await?;
        if stem.ends_with(".tar") {
            run(context, user, &["tar", "-xf", stem]).await?;
        }
        Ok(())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn names_come_from_the_last_segment() {
        assert_eq!(file_name("http://h:8/folder/test.sh"), "test.sh");
        assert_eq!(file_name("https://h/a/folder.tar.gz?x=1"), "folder.tar.gz");
        assert_eq!(file_name("http://h/"), "context");
        assert_eq!(file_name("http://h/../..%2f"), "context");
    }
}
