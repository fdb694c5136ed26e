//! Lowercase RFC 4648 base32 without padding, for codes people copy and paste, by the
//! `data-encoding` crate.
//!
//! Base32 survives double-click selection, chat clients and case changes, which base64 does
//! not. The decoder accepts upper case too.

use data_encoding::{DecodeKind, Encoding};

/// The alphabet, lower case; upper case decodes the same.
const STRICT: Encoding = data_encoding_macro::new_encoding! {
    symbols: "abcdefghijklmnopqrstuvwxyz234567",
    translate_from: "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    translate_to: "abcdefghijklmnopqrstuvwxyz",
};

/// The same, with set leftover bits allowed (they are reported, not refused).
const LENIENT: Encoding = data_encoding_macro::new_encoding! {
    symbols: "abcdefghijklmnopqrstuvwxyz234567",
    translate_from: "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    translate_to: "abcdefghijklmnopqrstuvwxyz",
    check_trailing_bits: false,
};

/// Encodes bytes as lowercase base32 without padding.
pub fn encode(data: &[u8]) -> String {
    STRICT.encode(data)
}

/// Decoded bytes, and whether the text was the canonical encoding of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// False when leftover padding bits were set (or a lone trailing character), so two
    /// texts would decode to the same bytes: a sign of a changed or cut code.
    pub canonical: bool,
}

/// Decodes canonical base32 text; the error is the position of the offending character.
pub fn decode(text: &str) -> Result<Vec<u8>, usize> {
    let decoded = decode_lenient(text)?;
    if decoded.canonical {
        Ok(decoded.bytes)
    } else {
        Err(text.len().saturating_sub(1))
    }
}

/// Decodes base32 text, reporting rather than refusing a non-canonical ending; the error is
/// the position of the first character that is not base32.
pub fn decode_lenient(text: &str) -> Result<Decoded, usize> {
    let input = text.as_bytes();
    // Unpadded base32 has no text of 1, 3 or 6 characters past a multiple of 8: such a text
    // has one character too many (a cut code), which is checked but carries no whole byte.
    let whole = match input.len() % 8 {
        1 | 3 | 6 => input.len() - 1,
        _ => input.len(),
    };
    let symbol_error = |e: data_encoding::DecodeError, offset: usize| match e.kind {
        DecodeKind::Symbol => offset + e.position,
        _ => offset + input.len().saturating_sub(1),
    };
    let bytes = LENIENT
        .decode(&input[..whole])
        .map_err(|e| symbol_error(e, 0))?;
    if let Some(&last) = input.get(whole) {
        LENIENT
            .decode(&[last, b'a'])
            .map_err(|e| symbol_error(e, whole))?;
    }
    let canonical = whole == input.len() && STRICT.decode(input).is_ok();
    Ok(Decoded { bytes, canonical })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The hand-written codec this module had before, kept as an oracle: the crate must
    /// behave exactly like it, so codes already handed out read the same.
    mod before {
        use super::super::Decoded;

        const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

        /// Encodes bytes as lowercase base32 without padding.
        pub(super) fn encode(data: &[u8]) -> String {
            let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
            let mut buffer: u64 = 0;
            let mut bits = 0u32;
            for &byte in data {
                buffer = (buffer << 8) | u64::from(byte);
                bits += 8;
                while bits >= 5 {
                    bits -= 5;
                    out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
                }
            }
            if bits > 0 {
                out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
            }
            out
        }

        /// Decodes canonical base32 text; the error is the position of the offending character.
        pub(super) fn decode(text: &str) -> Result<Vec<u8>, usize> {
            let decoded = decode_lenient(text)?;
            if decoded.canonical {
                Ok(decoded.bytes)
            } else {
                Err(text.len().saturating_sub(1))
            }
        }

        /// Decodes base32 text, reporting rather than refusing a non-canonical ending; the error is
        /// the position of the first character that is not base32.
        pub(super) fn decode_lenient(text: &str) -> Result<Decoded, usize> {
            let mut out = Vec::with_capacity(text.len() * 5 / 8);
            let mut buffer: u64 = 0;
            let mut bits = 0u32;
            for (position, c) in text.bytes().enumerate() {
                let value = match c.to_ascii_lowercase() {
                    c @ b'a'..=b'z' => c - b'a',
                    c @ b'2'..=b'7' => c - b'2' + 26,
                    _ => return Err(position),
                };
                buffer = (buffer << 5) | u64::from(value);
                bits += 5;
                if bits >= 8 {
                    bits -= 8;
                    out.push(((buffer >> bits) & 0xff) as u8);
                }
            }
            // Leftover padding bits must be zero, or a changed last character could go unnoticed.
            let canonical = bits < 5 && buffer & ((1 << bits) - 1) == 0;
            Ok(Decoded {
                bytes: out,
                canonical,
            })
        }
    }

    proptest! {
        #[test]
        fn round_trips(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(decode(&encode(&data)).unwrap(), data);
        }

        #[test]
        fn the_crate_encodes_like_the_code_it_replaced(
            data in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            prop_assert_eq!(encode(&data), before::encode(&data));
        }

        #[test]
        fn the_crate_decodes_like_the_code_it_replaced(text in "[a-zA-Z2-7!1=]{0,40}") {
            prop_assert_eq!(decode_lenient(&text), before::decode_lenient(&text));
            prop_assert_eq!(decode(&text), before::decode(&text));
        }
    }

    #[test]
    fn golden_vectors() {
        // RFC 4648 section 10, lower case and unpadded.
        for (data, text) in [
            ("", ""),
            ("f", "my"),
            ("fo", "mzxq"),
            ("foo", "mzxw6"),
            ("foob", "mzxw6yq"),
            ("fooba", "mzxw6ytb"),
            ("foobar", "mzxw6ytboi"),
        ] {
            assert_eq!(encode(data.as_bytes()), text);
            assert_eq!(decode(text).unwrap(), data.as_bytes());
            assert_eq!(decode(&text.to_ascii_uppercase()).unwrap(), data.as_bytes());
        }
    }

    #[test]
    fn rejects_foreign_characters() {
        assert_eq!(decode("abc!"), Err(3));
        assert_eq!(decode("ab1"), Err(2));
    }

    #[test]
    fn rejects_non_canonical_padding_bits() {
        let text = encode(&[0xff]);
        assert_eq!(text, "74");
        assert_eq!(decode("75"), Err(1));
        assert_eq!(decode("7"), Err(0));
    }
}
