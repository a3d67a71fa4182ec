//! Content-Encoding of webhook bodies: `gzip` (or `x-gzip`) and `deflate` are decoded,
//! `identity` (or no header) is read as is, anything else is refused with 415.
//!
//! The decoded body is held to the same limit as the body as sent, and decoded as a stream
//! that stops one byte past that limit: a small body that would inflate to gigabytes costs
//! no more memory than the limit, and is answered 413.

use std::io::Read;

use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web::Bytes;
use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};

use super::error::ApiError;

/// A content coding this service decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    /// HTTP's `deflate` is the zlib format; raw DEFLATE, which some clients send under the
    /// same name, is accepted too.
    Deflate,
}

impl Coding {
    fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
        }
    }
}

/// The coding of a request's body: `None` for none (or `identity`). More than one coding,
/// or one this service does not decode, is refused.
pub fn coding_of(request: &HttpRequest) -> Result<Option<Coding>, ApiError> {
    let mut named = Vec::new();
    for value in request.headers().get_all(header::CONTENT_ENCODING) {
        let value = value
            .to_str()
            .map_err(|_| ApiError::UnsupportedEncoding("(not text)".to_owned()))?;
        named.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"))
                .map(str::to_ascii_lowercase),
        );
    }
    let codings = named
        .iter()
        .map(|name| match name.as_str() {
            "gzip" | "x-gzip" => Ok(Coding::Gzip),
            "deflate" => Ok(Coding::Deflate),
            _ => Err(ApiError::UnsupportedEncoding(name.clone())),
        })
        .collect::<Result<Vec<Coding>, ApiError>>()?;
    match codings.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        _ => Err(ApiError::UnsupportedEncoding(named.join(", "))),
    }
}

/// Whether `body` starts with a zlib header (RFC 1950): DEFLATE, a window of at most 32 KiB,
/// and the check bits.
fn is_zlib(body: &[u8]) -> bool {
    match body {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

/// Decodes `body`, reading at most `limit` + 1 decoded bytes.
pub fn decode(coding: Coding, body: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let reader: Box<dyn Read + '_> = match coding {
        Coding::Gzip => Box::new(MultiGzDecoder::new(body)),
        Coding::Deflate if is_zlib(body) => Box::new(ZlibDecoder::new(body)),
        Coding::Deflate => Box::new(DeflateDecoder::new(body)),
    };
    let most = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut decoded = Vec::new();
    reader.take(most).read_to_end(&mut decoded).map_err(|e| {
        ApiError::BadRequest(format!("the {} body cannot be decoded: {e}", coding.name()))
    })?;
    if decoded.len() > limit {
        return Err(ApiError::DecodedTooLarge { limit });
    }
    Ok(decoded)
}

/// Decodes `body` off the async workers (it takes up to `limit` bytes of inflating).
pub async fn decoded(coding: Option<Coding>, body: Bytes, limit: usize) -> Result<Bytes, ApiError> {
    let Some(coding) = coding else {
        return Ok(body);
    };
    actix_web::web::block(move || decode(coding, &body, limit))
        .await
        .map_err(|_| ApiError::Other {
            status: actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            message: "decoding the body failed".to_owned(),
        })?
        .map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::ResponseError;
    use actix_web::test::TestRequest;
    use flate2::Compression;

    fn coding(values: &[&str]) -> Result<Option<Coding>, u16> {
        let mut request = TestRequest::post();
        for value in values {
            request = request.append_header((header::CONTENT_ENCODING, *value));
        }
        coding_of(&request.to_http_request()).map_err(|e| e.status_code().as_u16())
    }

    #[test]
    fn reads_the_content_encoding_header() {
        assert_eq!(coding(&[]), Ok(None));
        assert_eq!(coding(&["identity"]), Ok(None));
        assert_eq!(coding(&["gzip"]), Ok(Some(Coding::Gzip)));
        assert_eq!(coding(&["X-GZIP"]), Ok(Some(Coding::Gzip)));
        assert_eq!(coding(&["Deflate"]), Ok(Some(Coding::Deflate)));
        assert_eq!(coding(&["identity, gzip"]), Ok(Some(Coding::Gzip)));
        for refused in [
            &["br"][..],
            &["zstd"],
            &["gzip, gzip"],
            &["gzip", "deflate"],
        ] {
            assert_eq!(coding(refused), Err(415), "{refused:?}");
        }
    }

    fn compressed(coding: &str, data: &[u8]) -> Vec<u8> {
        use flate2::bufread::{DeflateEncoder, GzEncoder, ZlibEncoder};
        let level = Compression::default();
        let mut encoder: Box<dyn Read + '_> = match coding {
            "gzip" => Box::new(GzEncoder::new(data, level)),
            "zlib" => Box::new(ZlibEncoder::new(data, level)),
            _ => Box::new(DeflateEncoder::new(data, level)),
        };
        let mut out = Vec::new();
        encoder.read_to_end(&mut out).expect("in memory");
        out
    }

    #[test]
    fn decodes_gzip_zlib_and_raw_deflate() {
        let body = br#"[{"item_name": "/k"}]"#;
        let gzip = compressed("gzip", body);
        assert_eq!(decode(Coding::Gzip, &gzip, 1024).expect("gzip"), body);
        let zlib = compressed("zlib", body);
        assert!(is_zlib(&zlib));
        assert_eq!(decode(Coding::Deflate, &zlib, 1024).expect("zlib"), body);
        let raw = compressed("raw", body);
        assert!(!is_zlib(&raw));
        assert_eq!(decode(Coding::Deflate, &raw, 1024).expect("raw"), body);
        // Exactly the limit is accepted.
        assert_eq!(
            decode(Coding::Gzip, &gzip, body.len()).expect("at limit"),
            body
        );
    }

    #[test]
    fn decoding_stops_past_the_limit() {
        let mut bomb = compressed("gzip", &vec![0; 10 << 20]);
        assert!(bomb.len() < 64 << 10, "{}", bomb.len());
        // A spoiled trailer would make a decoding that went to the end fail as corrupt.
        let trailer = bomb.len() - 8;
        bomb[trailer..].fill(0);
        let error = decode(Coding::Gzip, &bomb, 1 << 20).expect_err("too large");
        assert_eq!(error.status_code().as_u16(), 413);
        assert!(error.to_string().contains("decompressed"), "{error}");
    }

    #[test]
    fn corrupt_bodies_are_bad_requests() {
        let mut gzip = compressed("gzip", b"{}");
        let last = gzip.len() - 1;
        gzip[last] ^= 0xff; // the length in the trailer
        for (coding, body) in [
            (Coding::Gzip, &b"not gzip"[..]),
            (Coding::Gzip, &gzip[..]),
            (Coding::Deflate, &b"\xff\xff\xff"[..]),
        ] {
            let error = decode(coding, body, 1024).expect_err("corrupt");
            assert_eq!(error.status_code().as_u16(), 400, "{coding:?}");
        }
    }
}
