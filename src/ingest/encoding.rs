//! Text encodings of incoming files: UTF-8, UTF-8 with a BOM, or GBK (older
//! exports and the civil-affairs files). Detected from the first bytes, then
//! applied field by field, so a single undecodable row is quarantined rather
//! than failing the file.

use std::borrow::Cow;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TextEncoding {
    Utf8,
    Utf8Bom,
    Gbk,
}

impl TextEncoding {
    pub fn name(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "UTF-8",
            TextEncoding::Utf8Bom => "UTF-8 with BOM",
            TextEncoding::Gbk => "GBK",
        }
    }

    /// Bytes to skip at the start of the file.
    pub fn bom_len(self) -> usize {
        match self {
            TextEncoding::Utf8Bom => 3,
            _ => 0,
        }
    }

    /// Decodes one field; `None` when the bytes are not valid in this
    /// encoding.
    pub fn decode<'a>(self, bytes: &'a [u8]) -> Option<Cow<'a, str>> {
        match self {
            TextEncoding::Utf8 | TextEncoding::Utf8Bom => {
                std::str::from_utf8(bytes).ok().map(Cow::Borrowed)
            }
            TextEncoding::Gbk => {
                encoding_rs::GBK.decode_without_bom_handling_and_without_replacement(bytes)
            }
        }
    }

    /// Decodes for display, replacing what cannot be decoded.
    pub fn decode_lossy(self, bytes: &[u8]) -> String {
        match self {
            TextEncoding::Utf8 | TextEncoding::Utf8Bom => {
                String::from_utf8_lossy(bytes).into_owned()
            }
            TextEncoding::Gbk => encoding_rs::GBK
                .decode_without_bom_handling(bytes)
                .0
                .into_owned(),
        }
    }
}

/// Why the encoding of a file could not be determined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodingError {
    #[error("the file is UTF-16; re-export it as UTF-8 or GBK")]
    Utf16,
    #[error("line {line} is neither valid UTF-8 nor valid GBK; check the export's encoding")]
    Undecodable { line: u64 },
}

/// Decides the encoding from the first bytes of a file (a prefix of a few
/// tens of kilobytes is enough: the header is ASCII, the names in the first
/// rows are not). A prefix may end in the middle of a character, so only
/// complete lines are judged.
pub fn detect(prefix: &[u8], complete: bool) -> Result<TextEncoding, EncodingError> {
    if prefix.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Ok(TextEncoding::Utf8Bom);
    }
    if prefix.starts_with(&[0xFF, 0xFE]) || prefix.starts_with(&[0xFE, 0xFF]) {
        return Err(EncodingError::Utf16);
    }
    let judged = if complete {
        prefix
    } else {
        match prefix.iter().rposition(|&b| b == b'\n') {
            Some(end) => &prefix[..=end],
            None => prefix,
        }
    };
    if std::str::from_utf8(judged).is_ok() {
        return Ok(TextEncoding::Utf8);
    }
    if encoding_rs::GBK
        .decode_without_bom_handling_and_without_replacement(judged)
        .is_some()
    {
        return Ok(TextEncoding::Gbk);
    }
    // Name the first line that fails both, so the user can look at it.
    let mut line = 1u64;
    for l in judged.split(|&b| b == b'\n') {
        let utf8 = std::str::from_utf8(l).is_ok();
        let gbk = encoding_rs::GBK
            .decode_without_bom_handling_and_without_replacement(l)
            .is_some();
        if !utf8 && !gbk {
            break;
        }
        line += 1;
    }
    Err(EncodingError::Undecodable { line })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bom_means_utf8_with_bom() {
        assert_eq!(
            detect(b"\xEF\xBB\xBFperson_no\n", true),
            Ok(TextEncoding::Utf8Bom)
        );
    }

    #[test]
    fn chinese_in_utf8_is_utf8() {
        assert_eq!(
            detect("a,王秀英\n".as_bytes(), true),
            Ok(TextEncoding::Utf8)
        );
    }

    #[test]
    fn chinese_in_gbk_is_gbk() {
        let (bytes, _, _) = encoding_rs::GBK.encode("a,王秀英\nb,李建国\n");
        assert_eq!(detect(&bytes, true), Ok(TextEncoding::Gbk));
        assert_eq!(
            TextEncoding::Gbk.decode(&bytes).as_deref(),
            Some("a,王秀英\nb,李建国\n")
        );
    }

    #[test]
    fn a_prefix_cut_mid_character_is_still_utf8() {
        let text = "a,王秀英\nb,李建国\n".as_bytes();
        let cut = &text[..text.len() - 2];
        assert_eq!(detect(cut, false), Ok(TextEncoding::Utf8));
    }

    #[test]
    fn utf16_is_refused_with_advice() {
        assert_eq!(detect(b"\xFF\xFEp\x00", true), Err(EncodingError::Utf16));
    }

    #[test]
    fn bytes_valid_in_neither_name_the_line() {
        assert_eq!(
            detect(b"header\nok\n\x80\xFF\xFF\n", true),
            Err(EncodingError::Undecodable { line: 3 })
        );
    }
}
