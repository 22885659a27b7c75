//! Interop: `async-tungstenite` (an independent RFC 6455 implementation,
//! client side, on smol) against an echo server built from `ws::Handshake` +
//! `ws::Connection` and driven exactly as the module docs say, over a real
//! loopback socket bound to port 0. Messages of many sizes (past 64 KiB),
//! client-side fragmentation, ping/pong, the close handshake, subprotocol
//! echo and a driver's 404. No sleeps: each side waits on the other's bytes.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::http::HeaderValue;
use async_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use async_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
use async_tungstenite::tungstenite::{Error as WsError, Message};
use futures_util::StreamExt;
use vncap_core::ws::frame::{Config, Decoded};
use vncap_core::ws::handshake::{self, Handshake};
use vncap_core::ws::{Connection, Subprotocol};
use vncap_core::Machine;

/// What the server saw.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    subprotocol: Option<Subprotocol>,
    messages: usize,
    closed: Option<Option<u16>>,
}

fn flush_conn(conn: &mut Connection, sock: &mut TcpStream) {
    let mut out = [0u8; 512];
    loop {
        let n = conn.poll_output(&mut out);
        if n == 0 {
            break;
        }
        sock.write_all(&out[..n]).unwrap();
    }
}

/// One connection of the echo server; `reject` answers the request with 404.
fn serve(mut sock: TcpStream, reject: bool) -> Seen {
    let mut seen = Seen {
        subprotocol: None,
        messages: 0,
        closed: None,
    };
    let mut buf = vec![0u8; 16 * 1024];
    let mut start;
    let mut end = 0usize;
    let mut hs = Handshake::new(handshake::Config::default());
    // Handshake phase.
    loop {
        let n = sock.read(&mut buf[end..]).unwrap();
        assert!(n > 0, "client left during the handshake");
        end += n;
        match hs.handle_input(&buf[..end]) {
            Ok(0) => continue,
            Ok(used) => {
                start = used;
                break;
            }
            Err(e) => panic!("handshake: {e}"),
        }
    }
    assert_eq!(hs.poll_event(), Some(handshake::Event::Request));
    assert_eq!(hs.request().unwrap().query_param("token"), Some("t0k3n"));
    if reject {
        hs.reject(404);
    } else {
        hs.accept();
    }
    let mut out = [0u8; 256];
    loop {
        let n = hs.poll_output(&mut out);
        if n == 0 {
            break;
        }
        sock.write_all(&out[..n]).unwrap();
    }
    let Some(handshake::Event::Upgraded(sub)) = hs.poll_event() else {
        return seen;
    };
    seen.subprotocol = Some(sub);
    // Data phase: echo each message back as one frame.
    let mut conn = Connection::new(sub, Config::default());
    let mut msg = Vec::new();
    loop {
        let (used, item) = conn.decode(&mut buf[start..end]).unwrap();
        start += used;
        match item {
            Some(Decoded::Data { bytes, end: last }) => {
                msg.extend_from_slice(bytes);
                if last {
                    flush_conn(&mut conn, &mut sock);
                    let (h, n) = conn.data_header(msg.len()).unwrap();
                    sock.write_all(&h[..n]).unwrap();
                    sock.write_all(&msg).unwrap();
                    msg.clear();
                    seen.messages += 1;
                }
            }
            Some(Decoded::Closed { code }) => {
                seen.closed = Some(code);
                flush_conn(&mut conn, &mut sock);
                return seen;
            }
            None if used == 0 => {
                flush_conn(&mut conn, &mut sock);
                buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
                let n = sock.read(&mut buf[end..]).unwrap();
                if n == 0 {
                    return seen;
                }
                end += n;
            }
            None => {}
        }
    }
}

fn server(reject: bool) -> (String, thread::JoinHandle<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = thread::spawn(move || serve(listener.accept().unwrap().0, reject));
    (format!("ws://{addr}/websockify?token=t0k3n"), h)
}

async fn connect(
    url: &str,
    protocol: Option<&str>,
) -> Result<
    (
        async_tungstenite::WebSocketStream<smol::net::TcpStream>,
        async_tungstenite::tungstenite::handshake::client::Response,
    ),
    WsError,
> {
    let mut req = url.into_client_request().unwrap();
    if let Some(p) = protocol {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_str(p).unwrap());
    }
    let addr = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let tcp = smol::net::TcpStream::connect(addr).await.unwrap();
    async_tungstenite::client_async(req, tcp).await
}

fn sizes() -> Vec<usize> {
    vec![
        0,
        1,
        2,
        3,
        4,
        100,
        125,
        126,
        127,
        1000,
        16 * 1024,
        65535,
        65536,
        65537,
        200_000,
        1 << 20,
    ]
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 131 % 256) as u8).collect()
}

fn session(protocol: Option<&'static str>) -> Seen {
    let (url, h) = server(false);
    smol::block_on(async {
        let (mut ws, resp) = connect(&url, protocol).await.unwrap();
        assert_eq!(
            resp.headers()
                .get("Sec-WebSocket-Protocol")
                .map(|v| v.to_str().unwrap()),
            protocol.filter(|p| p.contains("binary")).map(|_| "binary")
        );
        for n in sizes() {
            let data = payload(n);
            ws.send(Message::Binary(data.clone().into())).await.unwrap();
            match ws.next().await.unwrap().unwrap() {
                Message::Binary(b) => assert_eq!(b.as_ref(), &data[..], "size {n}"),
                other => panic!("size {n}: {other:?}"),
            }
        }
        // Fragmented: three frames, a ping in the middle.
        let parts: [&[u8]; 3] = [b"frag-one/", b"frag-two/", &payload(70_000)];
        ws.send(Message::Frame(Frame::message(
            parts[0].to_vec(),
            OpCode::Data(Data::Binary),
            false,
        )))
        .await
        .unwrap();
        ws.send(Message::Frame(Frame::message(
            parts[1].to_vec(),
            OpCode::Data(Data::Continue),
            false,
        )))
        .await
        .unwrap();
        ws.send(Message::Ping(b"mid".to_vec().into()))
            .await
            .unwrap();
        ws.send(Message::Frame(Frame::message(
            parts[2].to_vec(),
            OpCode::Data(Data::Continue),
            true,
        )))
        .await
        .unwrap();
        match ws.next().await.unwrap().unwrap() {
            Message::Pong(p) => assert_eq!(p.as_ref(), b"mid"),
            other => panic!("{other:?}"),
        }
        match ws.next().await.unwrap().unwrap() {
            Message::Binary(b) => assert_eq!(b.as_ref(), &parts.concat()[..]),
            other => panic!("{other:?}"),
        }
        ws.send(Message::Ping(b"vncap".to_vec().into()))
            .await
            .unwrap();
        match ws.next().await.unwrap().unwrap() {
            Message::Pong(p) => assert_eq!(p.as_ref(), b"vncap"),
            other => panic!("{other:?}"),
        }
        // Close handshake: our code comes back, then the stream ends.
        ws.close(Some(CloseFrame {
            code: 1000.into(),
            reason: "bye".into(),
        }))
        .await
        .unwrap();
        let mut echoed = None;
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Close(c)) => echoed = c.map(|c| u16::from(c.code)),
                Ok(other) => panic!("{other:?}"),
                Err(WsError::ConnectionClosed) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(echoed, Some(1000));
    });
    h.join().unwrap()
}

#[test]
fn echo_without_subprotocol() {
    let seen = session(None);
    assert_eq!(
        seen,
        Seen {
            subprotocol: Some(Subprotocol::None),
            messages: sizes().len() + 1,
            closed: Some(Some(1000))
        }
    );
}

#[test]
fn echo_with_binary_subprotocol() {
    let seen = session(Some("binary"));
    assert_eq!(seen.subprotocol, Some(Subprotocol::Binary));
    assert_eq!(seen.closed, Some(Some(1000)));
    let seen = session(Some("base64, binary"));
    assert_eq!(seen.subprotocol, Some(Subprotocol::Binary));
}

#[test]
fn driver_reject_is_a_real_404() {
    let (url, h) = server(true);
    let err = smol::block_on(connect(&url, None)).unwrap_err();
    match err {
        WsError::Http(resp) => assert_eq!(resp.status(), 404),
        other => panic!("{other}"),
    }
    assert_eq!(h.join().unwrap().subprotocol, None);
}
