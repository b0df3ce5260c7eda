//! A streaming tar reader for dockerd's archive answers (Go's `archive/tar`:
//! ustar headers with a name prefix, PAX `x` records for long names, GNU `L`
//! long names): entries one after another, each entry's data read in chunks and
//! never held whole.

use crate::bytes::Reader;

/// The kinds of entry that matter here.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    File,
    Dir,
    /// Symlinks, hard links, devices, FIFOs: skipped.
    Other,
}

/// One entry's header.
#[derive(Debug)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
}

/// Entries of a tar stream.
pub struct Tar {
    reader: Reader,
    /// Data (and padding) of the current entry not read yet.
    left: u64,
    pad: u64,
}

fn octal(field: &[u8]) -> Result<u64, String> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // base-256 (GNU) for sizes over 8 GiB
        return Ok(field[1..].iter().fold(0u64, |n, b| (n << 8) | *b as u64));
    }
    let text: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect::<String>()
        .trim()
        .to_string();
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(&text, 8).map_err(|_| format!("a tar header has a bad number {text:?}"))
}

fn text(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// The `path` of a PAX record set (`"<len> path=<value>\n"` records).
fn pax_path(records: &[u8]) -> Option<String> {
    let mut rest = records;
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        let record = rest.get(space + 1..len)?;
        if let Some(value) = record.strip_prefix(b"path=") {
            let value = value.strip_suffix(b"\n").unwrap_or(value);
            return Some(String::from_utf8_lossy(value).into_owned());
        }
        rest = rest.get(len..)?;
    }
    None
}

impl Tar {
    pub fn new(reader: Reader) -> Self {
        Tar {
            reader,
            left: 0,
            pad: 0,
        }
    }

    /// Skips what is left of the current entry.
    async fn skip_rest(&mut self) -> Result<(), String> {
        let n = self.left + self.pad;
        self.left = 0;
        self.pad = 0;
        self.reader.forward(n, async |_| {}).await
    }

    /// The next entry (its data follows through [`Tar::data`]); `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Entry>, String> {
        self.skip_rest().await?;
        let mut long_name: Option<String> = None;
        loop {
            let Some(block) = self.reader.exact(512).await? else {
                return Ok(None);
            };
            if block.iter().all(|b| *b == 0) {
                return Ok(None);
            }
            let size = octal(&block[124..136])?;
            let pad = (512 - size % 512) % 512;
            let flag = block[156];
            if flag == b'x' || flag == b'L' {
                if size > 1024 * 1024 {
                    return Err(format!("a tar long-name record of {size} bytes"));
                }
                let data = self.reader.exact(size as usize).await?.unwrap_or_default();
                self.reader.forward(pad, async |_| {}).await?;
                long_name = if flag == b'x' {
                    pax_path(&data).or(long_name)
                } else {
                    Some(text(&data))
                };
                continue;
            }
            if flag == b'g' || flag == b'K' {
                self.reader.forward(size + pad, async |_| {}).await?;
                continue;
            }
            let path = long_name.take().unwrap_or_else(|| {
                let name = text(&block[0..100]);
                let prefix = if &block[257..262] == b"ustar" {
                    text(&block[345..500])
                } else {
                    String::new()
                };
                if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                }
            });
            let kind = match flag {
                b'0' | 0 | b'7' => Kind::File,
                b'5' => Kind::Dir,
                _ => Kind::Other,
            };
            self.left = size;
            self.pad = pad;
            return Ok(Some(Entry { path, kind }));
        }
    }

    /// The next chunk of the current entry's data; `None` after its last byte.
    pub async fn data(&mut self) -> Result<Option<Vec<u8>>, String> {
        if self.left == 0 {
            return Ok(None);
        }
        let max = self.left.min(crate::bytes::CHUNK as u64) as usize;
        match self.reader.some(max).await? {
            Some(chunk) => {
                self.left -= chunk.len() as u64;
                Ok(Some(chunk))
            }
            None => Err("the archive ended in the middle of a file".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names() {
        assert_eq!(octal(b"0000644\0").unwrap(), 0o644);
        assert_eq!(octal(b"00000000013 ").unwrap(), 11);
        assert_eq!(octal(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]).unwrap(), 256);
        assert_eq!(
            pax_path(b"30 mtime=1350244992.023960108\n20 path=a/b/long.txt\n").unwrap(),
            "a/b/long.txt"
        );
        assert_eq!(text(b"folder/\0\0\0"), "folder/");
    }
}
