//! Versioned body layouts: how every record body is written and read.
//!
//! A body is its layout version (a postcard varint `u32`, one byte today), then the postcard
//! fields of that layout. A body grows only by appending fields and bumping
//! [`VersionedBody::VERSION`], keeping the previous layout as a type that converts with
//! `From` (the new fields take their defaults) and listing its decoder in
//! [`VersionedBody::OLDER`]. So:
//!
//! - an older reader reads a newer body: the version is at least the newest it knows, it reads
//!   the fields it knows and ignores the bytes after them;
//! - a newer reader reads an older body through that version's layout.
//!
//! Version 0 does not exist and is refused.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Reads one older layout's fields (the bytes after the version) into the newest layout.
pub type DecodeOlder<T> = fn(&[u8]) -> Result<T, postcard::Error>;

/// A record body with a layout version.
pub trait VersionedBody: Serialize + DeserializeOwned + 'static {
    /// The newest layout, the one this build writes. Starts at 1.
    const VERSION: u32;
    /// Decoders of the older layouts: entry `i` reads version `i + 1`, so it holds
    /// `VERSION - 1` entries, each usually [`older`]`::<LayoutVn, Self>`.
    const OLDER: &'static [DecodeOlder<Self>] = &[];
}

/// Decodes the fields of an older layout `Old` and converts it to `T`.
pub fn older<Old, T>(bytes: &[u8]) -> Result<T, postcard::Error>
where
    Old: DeserializeOwned + Into<T>,
{
    postcard::take_from_bytes::<Old>(bytes).map(|(old, _)| old.into())
}

/// Why a body's bytes do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The layout version is 0, which no writer uses.
    #[error("layout version 0 (bodies start at version 1)")]
    VersionZero,
    /// An older version this build has no layout for.
    #[error("layout version {0} is unknown to this build")]
    Unknown(u32),
    /// The fields do not decode as the layout says.
    #[error("{0}")]
    Fields(#[from] postcard::Error),
}

/// The bytes of `body`: its layout version, then its fields.
pub fn encode<T: VersionedBody>(body: &T) -> Vec<u8> {
    // Serializing plain structs into a Vec cannot fail.
    postcard::to_stdvec(&(T::VERSION, body)).unwrap_or_default()
}

/// Reads a body written by any version of its layout (see the module docs).
pub fn decode<T: VersionedBody>(bytes: &[u8]) -> Result<T, LayoutError> {
    let (version, fields) = postcard::take_from_bytes::<u32>(bytes)?;
    if version == 0 {
        return Err(LayoutError::VersionZero);
    }
    if version >= T::VERSION {
        // Written by this layout or a newer one: the fields a newer writer appended follow
        // the ones this build knows, and are ignored.
        return Ok(postcard::take_from_bytes::<T>(fields)?.0);
    }
    let decode_older = usize::try_from(version - 1)
        .ok()
        .and_then(|i| T::OLDER.get(i))
        .ok_or(LayoutError::Unknown(version))?;
    Ok(decode_older(fields)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// A body as an older build knows it: layout 1.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    struct Old {
        name: String,
        port: u16,
    }

    impl VersionedBody for Old {
        const VERSION: u32 = 1;
    }

    /// The same body after a field was appended: layout 2.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    struct New {
        name: String,
        port: u16,
        tags: Vec<String>,
    }

    impl From<Old> for New {
        fn from(old: Old) -> Self {
            New {
                name: old.name,
                port: old.port,
                tags: Vec::new(),
            }
        }
    }

    impl VersionedBody for New {
        const VERSION: u32 = 2;
        const OLDER: &'static [DecodeOlder<Self>] = &[older::<Old, New>];
    }

    fn new() -> New {
        New {
            name: "a".into(),
            port: 80,
            tags: vec!["t".into()],
        }
    }

    #[test]
    fn an_old_reader_reads_new_bytes_ignoring_the_appended_fields() {
        let bytes = encode(&new());
        assert_eq!(hex::encode(&bytes), "02016150010174");
        assert_eq!(
            decode::<Old>(&bytes).unwrap(),
            Old {
                name: "a".into(),
                port: 80,
            }
        );
    }

    #[test]
    fn a_new_reader_reads_old_bytes_with_the_new_fields_defaulted() {
        let old = Old {
            name: "a".into(),
            port: 80,
        };
        let bytes = encode(&old);
        assert_eq!(hex::encode(&bytes), "01016150");
        assert_eq!(
            decode::<New>(&bytes).unwrap(),
            New {
                name: "a".into(),
                port: 80,
                tags: Vec::new(),
            }
        );
    }

    #[test]
    fn a_newer_layout_than_known_reads_as_the_newest_known() {
        // Version 3 appended a field after `tags`; this build reads the first three.
        let mut bytes = encode(&new());
        bytes[0] = 3;
        bytes.extend_from_slice(&[0x05, 0xff]);
        assert_eq!(decode::<New>(&bytes).unwrap(), new());
    }

    #[test]
    fn version_zero_unknown_versions_and_garbage_are_refused() {
        let mut bytes = encode(&new());
        bytes[0] = 0;
        assert_eq!(decode::<New>(&bytes), Err(LayoutError::VersionZero));
        // A layout that forgot to list its older decoders.
        #[derive(Debug, Serialize, Deserialize)]
        struct Forgetful(u8);
        impl VersionedBody for Forgetful {
            const VERSION: u32 = 2;
        }
        assert!(matches!(
            decode::<Forgetful>(&[1, 7]),
            Err(LayoutError::Unknown(1))
        ));
        assert!(matches!(decode::<New>(&[]), Err(LayoutError::Fields(_))));
        assert!(matches!(
            decode::<New>(&[2, 5]),
            Err(LayoutError::Fields(_))
        ));
    }
}
