//! The ADB container of apk-tools v3 (doc/apk-v3.5.scd, src/adb.h,
//! src/adb.c): a tree of 32-bit little-endian tagged values in one ADB
//! block, then SIG and DATA blocks, each 8-byte aligned, behind the file
//! header `"ADB." schema-id`; usually wrapped as `"ADBd"` + raw deflate
//! (src/adb_comp.c, what `apk mkpkg` and `apk mkndx` write by default).
//!
//! Values: the top 4 bits are the type, the low 28 bits the immediate value
//! (INT, special) or the offset of the value inside the ADB block (INT_32,
//! INT_64, BLOB_8/16/32, ARRAY, OBJECT). Objects and arrays are slot
//! vectors whose slot 0 holds the number of slots (itself included).

use std::io::Write;

use flate2::write::DeflateEncoder;
use flate2::Compression;
use snafu::{ensure, ResultExt, Snafu};

pub const TYPE_SPECIAL: u32 = 0x0000_0000;
pub const TYPE_INT: u32 = 0x1000_0000;
pub const TYPE_INT_32: u32 = 0x2000_0000;
pub const TYPE_INT_64: u32 = 0x3000_0000;
pub const TYPE_BLOB_8: u32 = 0x8000_0000;
pub const TYPE_BLOB_16: u32 = 0x9000_0000;
pub const TYPE_BLOB_32: u32 = 0xa000_0000;
pub const TYPE_ARRAY: u32 = 0xd000_0000;
pub const TYPE_OBJECT: u32 = 0xe000_0000;
pub const TYPE_MASK: u32 = 0xf000_0000;
pub const VALUE_MASK: u32 = 0x0fff_ffff;

/// The NULL special value: an absent field.
pub const NULL: u32 = TYPE_SPECIAL;

/// Block types (the top 2 bits of a block's tag word).
pub const BLOCK_ADB: u32 = 0;
pub const BLOCK_SIG: u32 = 1;
pub const BLOCK_DATA: u32 = 2;
pub const BLOCK_ALIGNMENT: usize = 8;

/// Schema ids, as the four ASCII bytes following "ADB." in the file.
pub const SCHEMA_PACKAGE: [u8; 4] = *b"pckg";
pub const SCHEMA_INDEX: [u8; 4] = *b"indx";

/// The size of `struct adb_hdr` at the start of the ADB block.
const HEADER_LEN: usize = 8;
/// The largest block apk-tools accepts without the extended header.
const MAX_BLOCK_LEN: usize = 0x3fff_ffff - 4;

#[derive(Debug, Snafu)]
pub enum AdbError {
    #[snafu(display("the ADB block is {len} bytes, more than a 28-bit offset reaches"))]
    AdbTooLarge { len: usize },
    #[snafu(display("a {what} block of {len} bytes needs the extended header"))]
    BlockTooLarge { what: &'static str, len: usize },
    #[snafu(display("compressing the ADB stream: {source}"))]
    Compress { source: std::io::Error },
}

/// Writer of one ADB block: values are appended and referred to by offset;
/// children are written before the objects that hold them.
pub struct Adb {
    buf: Vec<u8>,
}

impl Default for Adb {
    fn default() -> Self {
        Self::new()
    }
}

impl Adb {
    /// A block holding only `struct adb_hdr` (compat version 0, version 0,
    /// root NULL until `finish`).
    pub fn new() -> Self {
        Adb {
            buf: vec![0; HEADER_LEN],
        }
    }

    /// Append `parts` at the next multiple of `align`; its offset.
    fn raw(&mut self, align: usize, parts: &[&[u8]]) -> u32 {
        self.buf.resize(self.buf.len().next_multiple_of(align), 0);
        let offset = self.buf.len();
        for part in parts {
            self.buf.extend_from_slice(part);
        }
        // Checked in finish(): an offset beyond 28 bits makes the block invalid.
        (offset as u32) & VALUE_MASK
    }

    /// An integer: immediate below 2^28, else 32 or 64 bits stored aside
    /// (4-byte aligned, as adb_w_int).
    pub fn int(&mut self, value: u64) -> u32 {
        if value >= 0x1_0000_0000 {
            TYPE_INT_64 | self.raw(4, &[&value.to_le_bytes()])
        } else if value > u64::from(VALUE_MASK) {
            TYPE_INT_32 | self.raw(4, &[&(value as u32).to_le_bytes()])
        } else {
            TYPE_INT | value as u32
        }
    }

    /// A byte string with an 8, 16 or 32-bit length prefix (aligned to the
    /// prefix's size); the empty blob is NULL, as in adb_w_blob_vec.
    pub fn blob(&mut self, bytes: &[u8]) -> u32 {
        let len = bytes.len();
        if len == 0 {
            NULL
        } else if len <= 0xff {
            TYPE_BLOB_8 | self.raw(1, &[&[len as u8], bytes])
        } else if len <= 0xffff {
            TYPE_BLOB_16 | self.raw(2, &[&(len as u16).to_le_bytes(), bytes])
        } else {
            TYPE_BLOB_32 | self.raw(4, &[&(len as u32).to_le_bytes(), bytes])
        }
    }

    /// An object whose field `i` (1-based) is `fields[i - 1]`; trailing
    /// NULL fields are dropped and an object without fields is NULL.
    pub fn object(&mut self, fields: &[u32]) -> u32 {
        self.slots(TYPE_OBJECT, fields)
    }

    /// An array of `items` (NULL items are skipped, as adb_wa_append does).
    /// The caller sorts them as the schema's pre_commit would.
    pub fn array(&mut self, items: &[u32]) -> u32 {
        let items: Vec<u32> = items.iter().copied().filter(|v| *v != NULL).collect();
        self.slots(TYPE_ARRAY, &items)
    }

    fn slots(&mut self, kind: u32, values: &[u32]) -> u32 {
        let used = values.iter().rposition(|v| *v != NULL).map_or(0, |i| i + 1);
        if used == 0 {
            return NULL;
        }
        let mut bytes = Vec::with_capacity(4 * (used + 1));
        bytes.extend_from_slice(&(used as u32 + 1).to_le_bytes());
        for value in &values[..used] {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        kind | self.raw(4, &[&bytes])
    }

    /// The little-endian word at `at` of the block so far (0 past its end).
    pub fn read_u32(&self, at: usize) -> u32 {
        self.buf
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    }

    /// Set the root value; the finished ADB block payload.
    pub fn finish(mut self, root: u32) -> Result<Vec<u8>, AdbError> {
        ensure!(
            self.buf.len() <= VALUE_MASK as usize,
            AdbTooLargeSnafu {
                len: self.buf.len()
            }
        );
        self.buf[4..8].copy_from_slice(&root.to_le_bytes());
        Ok(self.buf)
    }
}

/// Append one block: tag `(type << 30) | (4 + length)`, the payload, zero
/// padding to the 8-byte alignment (adb_c_block).
pub fn block(out: &mut Vec<u8>, kind: u32, parts: &[&[u8]]) -> Result<(), AdbError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    ensure!(
        len <= MAX_BLOCK_LEN,
        BlockTooLargeSnafu {
            what: match kind {
                BLOCK_ADB => "ADB",
                BLOCK_SIG => "SIG",
                _ => "DATA",
            },
            len
        }
    );
    let raw = 4 + len;
    out.extend_from_slice(&((kind << 30) | raw as u32).to_le_bytes());
    for part in parts {
        out.extend_from_slice(part);
    }
    let padding = raw.next_multiple_of(BLOCK_ALIGNMENT) - raw;
    out.extend(std::iter::repeat_n(0u8, padding));
    Ok(())
}

/// The uncompressed file: `"ADB."`, the schema id, the ADB block, the SIG
/// blocks' payloads and the DATA blocks (each `path_idx`, `file_idx` as in
/// struct adb_data_package, then the file's bytes).
pub fn container(
    schema: [u8; 4],
    adb: &[u8],
    signatures: &[Vec<u8>],
    data: &[(u32, u32, &[u8])],
) -> Result<Vec<u8>, AdbError> {
    let mut out =
        Vec::with_capacity(16 + adb.len() + data.iter().map(|d| d.2.len() + 16).sum::<usize>());
    out.extend_from_slice(b"ADB.");
    out.extend_from_slice(&schema);
    block(&mut out, BLOCK_ADB, &[adb])?;
    for signature in signatures {
        block(&mut out, BLOCK_SIG, &[signature])?;
    }
    for (path_idx, file_idx, bytes) in data {
        block(
            &mut out,
            BLOCK_DATA,
            &[&path_idx.to_le_bytes(), &file_idx.to_le_bytes(), bytes],
        )?;
    }
    Ok(out)
}

/// `"ADBd"` and the raw deflate stream of `container`: apk-tools' default
/// compression (adb_compress with the default spec).
pub fn deflate(container: &[u8]) -> Result<Vec<u8>, AdbError> {
    let mut encoder = DeflateEncoder::new(b"ADBd".to_vec(), Compression::best());
    encoder.write_all(container).context(CompressSnafu)?;
    encoder.finish().context(CompressSnafu)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tiny reader for the tests: the value at `v` in the ADB block `adb`.
    #[derive(Debug, PartialEq)]
    pub enum Value {
        Null,
        Int(u64),
        Blob(Vec<u8>),
        Array(Vec<Value>),
        Object(Vec<Value>),
    }

    fn le32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
    }

    pub fn decode(adb: &[u8], v: u32) -> Value {
        let at = (v & VALUE_MASK) as usize;
        match v & TYPE_MASK {
            TYPE_SPECIAL => {
                assert_eq!(v, NULL, "only NULL is written");
                Value::Null
            }
            TYPE_INT => Value::Int(u64::from(v & VALUE_MASK)),
            TYPE_INT_32 => {
                assert_eq!(at % 4, 0, "int32 misaligned");
                Value::Int(u64::from(le32(adb, at)))
            }
            TYPE_INT_64 => {
                assert_eq!(at % 4, 0, "int64 misaligned");
                Value::Int(u64::from_le_bytes(adb[at..at + 8].try_into().expect("8")))
            }
            TYPE_BLOB_8 => Value::Blob(adb[at + 1..at + 1 + adb[at] as usize].to_vec()),
            TYPE_BLOB_16 => {
                assert_eq!(at % 2, 0, "blob16 misaligned");
                let len = u16::from_le_bytes([adb[at], adb[at + 1]]) as usize;
                Value::Blob(adb[at + 2..at + 2 + len].to_vec())
            }
            TYPE_BLOB_32 => {
                assert_eq!(at % 4, 0, "blob32 misaligned");
                let len = le32(adb, at) as usize;
                Value::Blob(adb[at + 4..at + 4 + len].to_vec())
            }
            kind @ (TYPE_ARRAY | TYPE_OBJECT) => {
                assert_eq!(at % 4, 0, "object misaligned");
                let n = le32(adb, at) as usize;
                let items = (1..n).map(|i| decode(adb, le32(adb, at + 4 * i))).collect();
                if kind == TYPE_ARRAY {
                    Value::Array(items)
                } else {
                    Value::Object(items)
                }
            }
            other => panic!("unexpected type {other:#x}"),
        }
    }

    /// The root value of a finished block.
    pub fn root(adb: &[u8]) -> Value {
        decode(adb, le32(adb, 4))
    }

    #[test]
    fn integers_pick_the_smallest_encoding() {
        let mut adb = Adb::new();
        assert_eq!(adb.int(0), TYPE_INT);
        assert_eq!(adb.int(0x0fff_ffff), TYPE_INT | 0x0fff_ffff);
        let v32 = adb.int(0x1000_0000);
        let v64 = adb.int(0x1_0000_0001);
        assert_eq!(v32 & TYPE_MASK, TYPE_INT_32);
        assert_eq!(v64 & TYPE_MASK, TYPE_INT_64);
        let bytes = adb.finish(NULL).unwrap();
        assert_eq!(decode(&bytes, v32), Value::Int(0x1000_0000));
        assert_eq!(decode(&bytes, v64), Value::Int(0x1_0000_0001));
    }

    #[test]
    fn blobs_pick_their_length_prefix_and_alignment() {
        let mut adb = Adb::new();
        assert_eq!(adb.blob(b""), NULL);
        let small = adb.blob(b"x");
        let medium = adb.blob(&[7u8; 300]);
        let _odd = adb.blob(b"abc");
        let large = adb.blob(&[9u8; 70_000]);
        assert_eq!(small & TYPE_MASK, TYPE_BLOB_8);
        assert_eq!(medium & TYPE_MASK, TYPE_BLOB_16);
        assert_eq!(large & TYPE_MASK, TYPE_BLOB_32);
        assert_eq!((medium & VALUE_MASK) % 2, 0);
        assert_eq!((large & VALUE_MASK) % 4, 0);
        let bytes = adb.finish(NULL).unwrap();
        assert_eq!(decode(&bytes, small), Value::Blob(b"x".to_vec()));
        assert_eq!(decode(&bytes, medium), Value::Blob(vec![7; 300]));
        assert_eq!(decode(&bytes, large), Value::Blob(vec![9; 70_000]));
    }

    #[test]
    fn objects_drop_trailing_nulls_and_round_trip() {
        let mut adb = Adb::new();
        assert_eq!(adb.object(&[NULL, NULL]), NULL);
        assert_eq!(adb.array(&[]), NULL);
        let name = adb.blob(b"besip");
        let one = adb.int(1);
        let two = adb.int(2);
        let list = adb.array(&[one, NULL, two]);
        let obj = adb.object(&[name, NULL, list, NULL, NULL]);
        let bytes = adb.finish(obj).unwrap();
        // Slot count = 3 fields + the count itself.
        assert_eq!(le32(&bytes, (obj & VALUE_MASK) as usize), 4);
        assert_eq!(
            root(&bytes),
            Value::Object(vec![
                Value::Blob(b"besip".to_vec()),
                Value::Null,
                Value::Array(vec![Value::Int(1), Value::Int(2)]),
            ])
        );
        assert_eq!(&bytes[..4], &[0, 0, 0, 0], "compat version 0, version 0");
    }

    #[test]
    fn blocks_are_tagged_and_padded_to_eight_bytes() {
        let adb = Adb::new().finish(NULL).unwrap();
        let file = container(SCHEMA_PACKAGE, &adb, &[vec![1, 2, 3]], &[(1, 2, b"hello")]).unwrap();
        assert_eq!(&file[..8], b"ADB.pckg");
        // ADB block: 4 + 8 bytes, padded to 16.
        assert_eq!(le32(&file, 8), 12);
        assert_eq!(file.len() % 8, 0);
        // SIG block at 8 + 16: type 1, 4 + 3 bytes, padded to 8.
        assert_eq!(le32(&file, 24), (1 << 30) | 7);
        // DATA block at 32: type 2, 4 + 8 + 5 bytes.
        assert_eq!(le32(&file, 32), (2 << 30) | 17);
        assert_eq!(le32(&file, 36), 1);
        assert_eq!(le32(&file, 40), 2);
        assert_eq!(&file[44..49], b"hello");
        assert_eq!(file.len(), 32 + 24);
    }

    #[test]
    fn deflate_has_the_adbd_header_and_inflates_back() {
        let adb = Adb::new().finish(NULL).unwrap();
        let file = container(SCHEMA_INDEX, &adb, &[], &[]).unwrap();
        let compressed = deflate(&file).unwrap();
        assert_eq!(&compressed[..4], b"ADBd");
        let mut inflated = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::DeflateDecoder::new(&compressed[4..]),
            &mut inflated,
        )
        .unwrap();
        assert_eq!(inflated, file);
    }
}
