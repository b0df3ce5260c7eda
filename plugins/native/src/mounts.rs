//! `payload.mounts`: files and read-only directories put into the task's home
//! before its first command (generic-worker's file mounts and read-only
//! directories); a `label` names a mount in the log instead of its URL (a signed
//! URL is a secret). The host downloads each (the bytes never enter the engine, and
//! the URL must be within `[plugins.native.network]`), or `data` (base64, in the
//! payload itself) is decoded by `base64 -d`; then, as the task's user,
//! `sha256sum` checks it when a digest is given, a file is decompressed by its
//! `format` (`gz`, `bz2`, `xz`, `zst`) and a directory unpacked by its (`tar`,
//! `tar.gz`, `tar.bz2`, `tar.xz`, `tar.zst` by `tar`, `zip` by `unzip`).

use enginehost_sdk::caps::files;
use enginehost_sdk::caps::users::TaskUser;
use enginehost_sdk::{Result, TaskContext, malformed};
use serde::Deserialize;

use crate::context::step;

/// One mount, as the payload gives it.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    /// Where the bytes come from...
    #[serde(default)]
    url: Option<String>,
    /// ... or the bytes themselves, base64 (generic-worker's `raw` and `base64`
    /// content; part of the payload, so bounded by its size).
    #[serde(default)]
    data: Option<String>,
    /// A file at this path in the home...
    #[serde(default)]
    file: Option<String>,
    /// ... or a directory unpacked at this path.
    #[serde(default)]
    directory: Option<String>,
    /// The compression (file) or archive format (directory).
    #[serde(default)]
    format: Option<String>,
    /// The download's sha256, hex; checked before it is used.
    #[serde(default)]
    sha256: Option<String>,
    /// What the log calls it instead of its URL (a signed URL is a secret).
    #[serde(default)]
    label: Option<String>,
}

/// The JSON Schema of one mount.
pub fn schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "url": {"type": "string", "format": "uri", "description": "Where to download it from (within [plugins.native.network])"},
            "data": {"type": "string", "description": "Or its bytes, base64 (decoded by base64 -d as the task's user)"},
            "file": {"type": "string", "description": "A file at this path, relative to the task's home"},
            "directory": {"type": "string", "description": "A directory at this path, relative to the task's home, unpacked from an archive"},
            "format": {"type": "string", "description": "A file's compression (gz, bz2, xz, zst) or a directory's archive (tar, tar.gz, tar.bz2, tar.xz, tar.zst, zip)"},
            "sha256": {"type": "string", "pattern": "^[a-f0-9]{64}$", "description": "The download's sha256, checked before use"},
            "label": {"type": "string", "description": "What the log calls it instead of its URL (for a URL that carries a secret)"}
        },
        "oneOf": [{"required": ["url"]}, {"required": ["data"]}],
        "additionalProperties": false
    })
}

/// A path in the home: relative, without `..`, `.` or empty segments.
pub(crate) fn relative(path: &str, at: &str) -> Result<()> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\0')
        && path.split('/').all(|s| !s.is_empty() && s != ".." && s != ".");
    if ok {
        Ok(())
    } else {
        Err(malformed(format!(
            "{at}: {path:?} is not a path inside the task's home; write a relative path without \"..\", e.g. \
             \"tools/bin\""
        )))
    }
}

/// The decompressor of a file's `format`, and the suffix it strips.
fn decompressor(format: &str) -> Option<(&'static [&'static str], &'static str)> {
    Some(match format {
        "gz" => (&["gunzip", "-f"], ".gz"),
        "bz2" => (&["bunzip2", "-f"], ".bz2"),
        "xz" => (&["xz", "-d", "-f"], ".xz"),
        "zst" => (&["zstd", "-d", "-f", "-q", "--rm"], ".zst"),
        _ => return None,
    })
}

const ARCHIVES: &[&str] = &["tar", "tar.gz", "tar.bz2", "tar.xz", "tar.zst", "zip"];

/// Checks every mount before anything is downloaded.
pub fn check(mounts: &[Mount]) -> Result<()> {
    for (i, mount) in mounts.iter().enumerate() {
        let at = format!("task.payload.mounts[{i}]");
        if mount.url.is_some() == mount.data.is_some() {
            return Err(malformed(format!(
                "{at}: give either \"url\" (downloaded) or \"data\" (base64), not both or neither"
            )));
        }
        match (&mount.file, &mount.directory, mount.format.as_deref()) {
            (Some(file), None, format) => {
                relative(file, &format!("{at}.file"))?;
                if let Some(format) = format
                    && decompressor(format).is_none()
                {
                    return Err(malformed(format!(
                        "{at}.format: {format:?} is not a file format the native engine unpacks; use one of gz, \
                         bz2, xz, zst, or none"
                    )));
                }
            }
            (None, Some(directory), Some(format)) => {
                relative(directory, &format!("{at}.directory"))?;
                if !ARCHIVES.contains(&format) {
                    return Err(malformed(format!(
                        "{at}.format: {format:?} is not an archive the native engine unpacks; use one of {}",
                        ARCHIVES.join(", ")
                    )));
                }
            }
            (None, Some(_), None) => {
                return Err(malformed(format!(
                    "{at}.format: required for a directory; one of {}",
                    ARCHIVES.join(", ")
                )));
            }
            _ => {
                return Err(malformed(format!("{at}: give either \"file\" or \"directory\"")));
            }
        }
    }
    Ok(())
}

/// The parent of `path` ("" for a top-level name).
fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}

/// Puts every mount into the home, in order.
pub async fn apply(context: &TaskContext, user: Option<&TaskUser>, mounts: &[Mount]) -> Result<()> {
    for (i, mount) in mounts.iter().enumerate() {
        let source = match (&mount.label, &mount.url) {
            (Some(label), _) => label.clone(),
            (None, Some(url)) => url.clone(),
            (None, None) => format!("mounts[{i}].data"),
        };
        let what = format!("mounting {source}");
        // Where the download lands, relative to the home.
        let landing = match (&mount.file, mount.format.as_deref()) {
            (Some(file), Some(format)) => {
                let (_, suffix) = decompressor(format).expect("checked");
                format!("{file}{suffix}")
            }
            (Some(file), None) => file.clone(),
            _ => format!(".enginehost-mount-{i}"),
        };
        let target = mount.file.as_deref().or(mount.directory.as_deref()).unwrap_or_default();
        let dir = if mount.file.is_some() { parent(target) } else { target };
        if !dir.is_empty() {
            step(context, user, &["mkdir", "-p", dir], None, "mounts", &what).await?;
        }
        match (&mount.url, &mount.data) {
            (Some(url), _) => files::download(context, url, &format!("home/{landing}"))
                .await
                .map(|_| ())
                .map_err(|e| {
                    // The host's message may quote the URL or a redirect's: with a
                    // label, no URL is repeated.
                    let why = match &mount.label {
                        Some(_) => files::without_urls(&e.message()),
                        None => e.message(),
                    };
                    malformed(format!("Error downloading {source} for mounts[{i}]: {why}"))
                })?,
            (None, data) => {
                // Written by the task's user, like everything else in its home.
                let data = data.clone().unwrap_or_default().into_bytes();
                let argv = ["sh", "-c", "base64 -d > \"$1\"", "sh", landing.as_str()];
                step(
                    context,
                    user,
                    &argv,
                    Some(data),
                    "mounts",
                    &format!("decoding {source}"),
                )
                .await?;
            }
        }
        if let Some(digest) = &mount.sha256 {
            let list = format!("{digest}  {landing}\n").into_bytes();
            step(
                context,
                user,
                &["sha256sum", "-c", "--status", "-"],
                Some(list),
                "mounts",
                &format!("checking the sha256 of {source} (it is not {digest})"),
            )
            .await?;
        }
        match (&mount.file, mount.format.as_deref()) {
            (Some(_), Some(format)) => {
                let (argv, _) = decompressor(format).expect("checked");
                let argv: Vec<&str> = argv.iter().copied().chain([landing.as_str()]).collect();
                step(context, user, &argv, None, "mounts", &what).await?;
            }
            (Some(_), None) => {}
            (None, format) => {
                let argv: Vec<&str> = if format == Some("zip") {
                    vec!["unzip", "-q", "-o", &landing, "-d", target]
                } else {
                    vec!["tar", "-xf", &landing, "-C", target]
                };
                step(context, user, &argv, None, "mounts", &what).await?;
                step(context, user, &["rm", "-f", &landing], None, "mounts", &what).await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(value: serde_json::Value) -> Mount {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn paths_stay_in_the_home_and_formats_are_known() {
        let ok = [
            mount(serde_json::json!({"url": "http://h/a", "file": "bin/tool"})),
            mount(serde_json::json!({"url": "http://h/a", "file": "tool", "format": "zst"})),
            mount(serde_json::json!({"url": "http://h/a", "directory": "src", "format": "tar.gz"})),
            mount(serde_json::json!({"data": "aGk=", "file": "notes.txt"})),
        ];
        assert!(check(&ok).is_ok());
        for (bad, says) in [
            (
                serde_json::json!({"url": "http://h/a", "file": "../x"}),
                "mounts[0].file",
            ),
            (
                serde_json::json!({"url": "http://h/a", "file": "/etc/passwd"}),
                "mounts[0].file",
            ),
            (
                serde_json::json!({"url": "http://h/a", "directory": "d"}),
                "mounts[0].format: required",
            ),
            (
                serde_json::json!({"url": "http://h/a", "directory": "d", "format": "rar"}),
                "is not an archive",
            ),
            (
                serde_json::json!({"url": "http://h/a", "file": "f", "format": "br"}),
                "is not a file format",
            ),
            (serde_json::json!({"url": "http://h/a"}), r#"\"directory\""#),
            (serde_json::json!({"file": "f"}), "(downloaded)"),
            (
                serde_json::json!({"url": "http://h/a", "data": "aGk=", "file": "f"}),
                "not both",
            ),
        ] {
            let e = format!("{:?}", check(&[mount(bad.clone())]).unwrap_err());
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
