//! Fuzz target: `policy::Policy`, the Flash policy responder, with an
//! arbitrary configured domain and port range, fed arbitrary bytes in
//! arbitrary reads.
//!
//! Input: `[splits] [domain: len, bytes] [first port: u16] [last port: u16]
//! [client bytes]`. Asserts: no panic; a config is accepted exactly when
//! `policy_xml` accepts it and its document is never truncated; the outcome
//! does not depend on the split; the answer (document + NUL) comes exactly
//! after the whole `<policy-file-request/>\0`, which is all that is
//! consumed; anything else is `NotPolicyRequest` as soon as it diverges.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vncap_core::policy::{policy_xml, Config, Error, Event, Policy, MAX_POLICY, REQUEST};
use vncap_fuzz::{drive_both, Reader, Splits};

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let mut splits = Splits::read(&mut r);
    let domain = String::from_utf8_lossy(r.counted()).into_owned();
    let ports = (r.u16(), r.u16());
    let input = r.rest();
    let config = Config {
        domain: &domain,
        ports,
    };
    let xml = policy_xml(&config);
    let Ok(_) = Policy::new(&config) else {
        assert!(xml.is_err());
        return;
    };
    let xml = xml.expect("Policy::new accepted what policy_xml refuses");
    assert!(
        xml.ends_with("</cross-domain-policy>\n"),
        "policy truncated"
    );
    assert!(xml.contains(&format!("domain=\"{domain}\"")));
    let make = || Policy::new(&config).unwrap();
    let (_, t) = drive_both(make, input, &mut splits, 64, MAX_POLICY + 1, |_, ev| {
        assert_eq!(*ev, Event::Answered);
    });
    if input.starts_with(REQUEST) {
        assert_eq!(t.events, [Event::Answered]);
        assert_eq!(t.error, None);
        assert_eq!(t.consumed, REQUEST.len());
        assert_eq!(&t.output[..xml.len()], xml.as_bytes());
        assert_eq!(t.output[xml.len()..], [0]);
    } else if REQUEST.starts_with(input) {
        assert_eq!(t.error, None);
        assert_eq!(t.consumed, input.len());
        assert!(t.output.is_empty() && t.events.is_empty());
    } else {
        assert_eq!(t.error, Some(Error::NotPolicyRequest));
        assert!(t.output.is_empty() && t.events.is_empty());
    }
});
