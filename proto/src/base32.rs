//! Lowercase RFC 4648 base32 without padding, for codes people copy and paste.
//!
//! Base32 survives double-click selection, chat clients and case changes, which base64 does
//! not. The decoder accepts upper case too.

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Encodes bytes as lowercase base32 without padding.
pub fn encode(data: &[u8]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(decode(&encode(&data)).unwrap(), data);
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
