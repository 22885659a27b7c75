//! Micro-benchmarks of the core's hot paths (criterion; `cargo bench -p
//! vncap-tests --bench core`, not run by the tests): WebSocket unmasking and
//! frame encoding in GB/s, and full RFB VNC-authentication handshakes per
//! second (the core's server in front of its own client: a DES challenge
//! encrypted by the client and checked by the server). Findings are in
//! bench/RESULTS.md.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use vncap_core::machine::Machine;
use vncap_core::rfb::{client, server};
use vncap_core::ws::frame::{unmask, Encoder};
use vncap_core::ws::Subprotocol;

fn ws(c: &mut Criterion) {
    let mut g = c.benchmark_group("ws");
    for size in [2048usize, 65536, 1 << 20] {
        let mut data = vec![0x5au8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("unmask", size), &size, |b, _| {
            b.iter(|| unmask(black_box(&mut data), [1, 2, 3, 4], 1))
        });
        let mut out = vec![0u8; size + 16];
        let enc = Encoder::new(Subprotocol::Binary);
        g.bench_with_input(BenchmarkId::new("encode_binary", size), &size, |b, _| {
            b.iter(|| enc.encode(black_box(&data), &mut out))
        });
    }
    g.finish();
}

/// One VNC-authentication login: server and client machines talking
/// through two small buffers until the client is logged in.
fn handshake(password: &[u8], challenge: [u8; 16]) -> bool {
    let mut s = server::Server::new(password, challenge);
    let mut cl = client::Client::new(Some(password));
    let mut buf = [0u8; 64];
    for _ in 0..16 {
        let n = s.poll_output(&mut buf);
        if n > 0 && cl.handle_input(&buf[..n]).is_err() {
            return false;
        }
        let n = cl.poll_output(&mut buf);
        if n > 0 && s.handle_input(&buf[..n]).is_err() {
            return false;
        }
        if let Some(server::Event::Authenticated) = s.poll_event() {
            s.accept();
        }
        if let Some(client::Event::LoggedIn) = cl.poll_event() {
            return true;
        }
    }
    false
}

fn rfb(c: &mut Criterion) {
    assert!(handshake(b"benchpw1", [7; 16]), "the handshake must log in");
    let mut g = c.benchmark_group("rfb");
    g.throughput(Throughput::Elements(1));
    g.bench_function("vnc_auth_handshake", |b| {
        b.iter(|| handshake(black_box(b"benchpw1"), black_box([7; 16])))
    });
    g.finish();
}

criterion_group!(benches, ws, rfb);
criterion_main!(benches);
