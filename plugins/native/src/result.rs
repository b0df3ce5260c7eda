//! What a finished native task leaves: its success, and the files in its home.

use std::rc::Rc;

use enginehost_sdk::caps::{CapError, files};
use enginehost_sdk::{Error, FileHandler, Result, ResultSet, StreamReader, TaskContext, malformed};

use crate::HOME;

/// What a finished task leaves: success, and the files in its home.
pub struct NativeResult {
    context: Rc<TaskContext>,
    success: bool,
}

impl NativeResult {
    pub(crate) fn new(context: Rc<TaskContext>, success: bool) -> Self {
        NativeResult { context, success }
    }
}

fn read_error(e: CapError) -> Error {
    match e {
        CapError::NotFound(_) => Error::ResourceNotFound,
        CapError::Invalid(why) => malformed(format!("Unable to evaluate path: {why}")),
        other => other.into(),
    }
}

impl ResultSet for NativeResult {
    fn success(&self) -> bool {
        self.success
    }

    async fn extract_file(&self, path: String) -> Result<StreamReader<u8>> {
        files::open_file(&self.context, HOME, path.trim_start_matches('/'))
            .await
            .map_err(read_error)
    }

    async fn extract_folder(&self, path: String, handler: &FileHandler) -> Result<()> {
        files::extract_folder(&self.context, HOME, &path, handler).await
    }
}
