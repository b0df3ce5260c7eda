//! The fake object service (`createUpload`, `finishUpload`, `startDownload`) and the blob URLs
//! that stand in for S3: `PUT <root>/_fake/blobs/<token>` uploads, `GET` downloads.
//!
//! `createUpload` prefers `dataInline` when proposed, else `putUrl` (a blob URL requiring the
//! proposed `Content-Type` and `Content-Length`). `finishUpload` checks every hash given against
//! the stored bytes. Blob PUTs need no credentials, like a presigned S3 URL, but must carry the
//! `Content-Type` fixed at creation and a `Content-Length`; a `Content-Encoding` is recorded.

use crate::hawk_auth::Caller;
use crate::reply::{ApiError, Reply};
use crate::scopes::Requirement;
use crate::state::{Blob, Object, State, parse_time, to_json_time};
use base64::Engine;
use chrono::{Duration, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256, Sha512};

const DATA_INLINE_MAX: usize = 8192;

/// Hex sha256 and sha512 of `data`, as the object service reports and checks them.
pub fn hashes(data: &[u8]) -> Value {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    json!({"sha256": hex(&Sha256::digest(data)), "sha512": hex(&Sha512::digest(data))})
}

fn str_field<'a>(body: &'a Value, k: &str) -> Result<&'a str, ApiError> {
    body.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid_schema(format!("`{k}` is required")))
}

/// `createUpload(name, {projectId, uploadId, expires, proposedUploadMethods})`.
pub fn create_upload(st: &mut State, caller: &Caller, name: &str, body: &Value) -> Result<Reply, ApiError> {
    let project_id = str_field(body, "projectId")?.to_string();
    let upload_id = str_field(body, "uploadId")?.to_string();
    let expires = parse_time(body, "expires")?;
    let proposed = body.get("proposedUploadMethods").and_then(Value::as_object);
    let proposed = proposed.ok_or_else(|| ApiError::invalid_schema("`proposedUploadMethods` is required"))?;
    caller.require(&Requirement::all([format!("object:upload:{project_id}:{name}")]))?;
    if let Some(o) = st.objects.get(name) {
        if o.upload_id != upload_id {
            return Err(ApiError::conflict(format!(
                "object `{name}` is being uploaded with another uploadId"
            )));
        }
        if o.project_id != project_id || o.expires != expires {
            return Err(ApiError::conflict(
                "projectId and expires cannot change between createUpload calls",
            ));
        }
        if o.finished {
            return Err(ApiError::conflict(format!("object `{name}` is already finished")));
        }
    } else {
        let blob_token = crate::tempcreds::random_token(24);
        st.blobs.insert(blob_token.clone(), Blob::default());
        let object = Object {
            project_id: project_id.clone(),
            upload_id: upload_id.clone(),
            expires,
            blob_token,
            finished: false,
        };
        st.objects.insert(name.to_string(), object);
    }
    let token = st.objects[name].blob_token.clone();
    let mut method = Map::new();
    if let Some(inline) = proposed.get("dataInline") {
        let ct = str_field(inline, "contentType")?.to_string();
        let data = base64::engine::general_purpose::STANDARD
            .decode(str_field(inline, "objectData")?)
            .map_err(|_| ApiError::input("dataInline.objectData is not base64"))?;
        if data.len() > DATA_INLINE_MAX {
            return Err(ApiError::input("dataInline data is larger than 8 KiB"));
        }
        let blob = st.blobs.get_mut(&token).expect("blob exists");
        (blob.data, blob.content_type) = (Some(data), ct);
        method.insert("dataInline".into(), json!(true));
    } else if let Some(put) = proposed.get("putUrl") {
        let ct = str_field(put, "contentType")?.to_string();
        let len = put.get("contentLength").and_then(Value::as_u64);
        let len = len.ok_or_else(|| ApiError::invalid_schema("putUrl.contentLength is required"))?;
        let blob = st.blobs.get_mut(&token).expect("blob exists");
        (blob.content_type, blob.expected_length) = (ct.clone(), Some(len));
        method.insert(
            "putUrl".into(),
            json!({
                "url": st.blob_url(&token),
                "expires": to_json_time(Utc::now() + Duration::hours(1)),
                "headers": {"Content-Type": ct, "Content-Length": len.to_string()},
            }),
        );
    }
    Ok(Reply::ok(json!({
        "projectId": project_id,
        "uploadId": upload_id,
        "expires": to_json_time(expires),
        "uploadMethod": Value::Object(method),
    })))
}

/// `finishUpload(name, {projectId, uploadId, hashes})`: the data must be there and match.
pub fn finish_upload(st: &mut State, caller: &Caller, name: &str, body: &Value) -> Result<Reply, ApiError> {
    let project_id = str_field(body, "projectId")?;
    let upload_id = str_field(body, "uploadId")?;
    caller.require(&Requirement::all([format!("object:upload:{project_id}:{name}")]))?;
    let o = st
        .objects
        .get(name)
        .ok_or_else(|| ApiError::not_found(format!("object `{name}` not found")))?;
    if o.upload_id != upload_id {
        return Err(ApiError::conflict("uploadId does not match the object's"));
    }
    if o.finished {
        return Ok(Reply::Empty);
    }
    let token = o.blob_token.clone();
    let data = st.blobs[&token]
        .data
        .as_ref()
        .ok_or_else(|| ApiError::input(format!("no data uploaded for `{name}`")))?;
    let actual = hashes(data);
    for (algo, given) in body.get("hashes").and_then(Value::as_object).into_iter().flatten() {
        match actual.get(algo) {
            Some(expected) if expected == given => {}
            Some(_) => return Err(ApiError::input(format!("{algo} hash does not match the uploaded data"))),
            None => return Err(ApiError::input(format!("unknown hash algorithm `{algo}`"))),
        }
    }
    st.objects.get_mut(name).expect("object").finished = true;
    st.blobs.get_mut(&token).expect("blob").sealed = true;
    Ok(Reply::Empty)
}

/// `startDownload(name, {acceptDownloadMethods})`: `getUrl` if accepted, else `simple`.
pub fn start_download(st: &State, caller: &Caller, name: &str, body: &Value) -> Result<Reply, ApiError> {
    caller.require(&Requirement::all([format!("object:download:{name}")]))?;
    let o = st.objects.get(name).filter(|o| o.finished);
    let o = o.ok_or_else(|| ApiError::not_found(format!("object `{name}` not found or not finished")))?;
    let url = st.blob_url(&o.blob_token);
    let accept = body.get("acceptDownloadMethods").cloned().unwrap_or_default();
    let data = st.blobs[&o.blob_token].data.as_deref().unwrap_or_default();
    if accept.get("getUrl") == Some(&json!(true)) {
        let expires = to_json_time(Utc::now() + Duration::hours(1));
        return Ok(Reply::ok(
            json!({"method": "getUrl", "url": url, "expires": expires, "hashes": hashes(data)}),
        ));
    }
    if accept.get("simple") == Some(&json!(true)) {
        return Ok(Reply::ok(json!({"method": "simple", "url": url})));
    }
    Err(ApiError::input(
        "none of acceptDownloadMethods is supported (the fake offers getUrl and simple)",
    ))
}

/// A PUT to a blob URL with the request's `Content-Type`, `Content-Length` and `Content-Encoding`.
pub fn put_blob(st: &mut State, token: &str, headers: [Option<&str>; 3], data: Vec<u8>) -> Result<Reply, ApiError> {
    let [content_type, content_length, content_encoding] = headers;
    let blob = st
        .blobs
        .get_mut(token)
        .ok_or_else(|| ApiError::not_found("no such upload URL"))?;
    if blob.sealed {
        return Err(ApiError::conflict("this upload is finished; the data is immutable"));
    }
    if content_type != Some(blob.content_type.as_str()) {
        return Err(ApiError::input(format!(
            "Content-Type must be `{}`, got {content_type:?}",
            blob.content_type
        )));
    }
    let length: u64 = content_length
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| ApiError::input("Content-Length is required"))?;
    if blob.expected_length.is_some_and(|e| e != length) || length != data.len() as u64 {
        return Err(ApiError::input(format!(
            "Content-Length {length} does not match the upload"
        )));
    }
    (blob.data, blob.content_encoding) = (Some(data), content_encoding.map(str::to_string));
    Ok(Reply::Json(200, json!({})))
}

/// A GET of a blob URL: the bytes with their content type and encoding.
pub fn get_blob(st: &State, token: &str) -> Result<Reply, ApiError> {
    let blob = st.blobs.get(token).ok_or_else(|| ApiError::not_found("no such blob"))?;
    let data = blob
        .data
        .clone()
        .ok_or_else(|| ApiError::not_found("no data uploaded yet"))?;
    Ok(Reply::Bytes {
        data,
        content_type: blob.content_type.clone(),
        content_encoding: blob.content_encoding.clone(),
    })
}
