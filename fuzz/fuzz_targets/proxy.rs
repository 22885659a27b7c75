//! Fuzz target: `proxy::parse`, the PROXY protocol header (v1 and v2) a
//! trusted load balancer writes before the client's bytes, on arbitrary
//! input. Asserts: no panic; a header never claims more bytes than it was
//! given, parses the same from exactly its own bytes, and every strict
//! prefix of it asks for more; an error stays the same whatever follows;
//! `starts_header` agrees with `parse` (no signature is `NotProxy`, a
//! signature never is).

#![no_main]

use libfuzzer_sys::fuzz_target;
use vncap_core::proxy::{parse, starts_header, Error, MAX_INPUT};

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(2 * MAX_INPUT)];
    match starts_header(data) {
        Some(false) => assert_eq!(parse(data), Err(Error::NotProxy)),
        Some(true) => assert_ne!(parse(data), Err(Error::NotProxy)),
        None => assert_eq!(parse(data), Ok(None)),
    }
    match parse(data) {
        Ok(Some(h)) => {
            assert!(
                h.len <= data.len(),
                "claims {} of {} bytes",
                h.len,
                data.len()
            );
            assert_eq!(parse(&data[..h.len]), Ok(Some(h)));
            for k in [0, h.len / 2, h.len - 1] {
                assert_eq!(parse(&data[..k]), Ok(None), "prefix {k} of {}", h.len);
            }
        }
        Ok(None) => assert!(data.len() < MAX_INPUT),
        Err(e) => {
            let mut more = data.to_vec();
            more.extend_from_slice(b"\r\nPROXY ");
            assert_eq!(parse(&more), Err(e), "an error changed with more bytes");
        }
    }
});
