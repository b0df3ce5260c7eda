//! In-memory volumes (seed `mockvolume.go`): a map of file name to contents.
//! `write_file` stores on end of stream, `write_folder` is a no-op, `build` returns
//! the same storage.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use enginehost_sdk::{Engine, Result, StreamReader, Volume, VolumeBuilder, read_all};

/// The files of a volume, shared by every mount of it.
pub type VolumeFiles = Rc<RefCell<BTreeMap<String, String>>>;

/// A mock volume.
#[derive(Default)]
pub struct MockVolume {
    pub(crate) files: VolumeFiles,
}

impl Volume for MockVolume {}

/// A mock volume builder.
#[derive(Default)]
pub struct MockVolumeBuilder {
    files: VolumeFiles,
}

impl<E: Engine<Volume = MockVolume>> VolumeBuilder<E> for MockVolumeBuilder {
    async fn write_folder(&self, _name: String) -> Result<()> {
        Ok(())
    }

    async fn write_file(&self, name: String, data: StreamReader<u8>) -> Result<()> {
        let bytes = read_all(data).await;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        self.files.borrow_mut().insert(name, text);
        Ok(())
    }

    async fn build(&self) -> Result<MockVolume> {
        Ok(MockVolume {
            files: self.files.clone(),
        })
    }
}
