//! A browser's side of a console, written against `async-tungstenite` (an
//! independent WebSocket implementation) over any async stream (TCP, TLS):
//! the RFB byte stream arrives cut into binary messages anywhere, so bytes
//! are collected and taken by count.

use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use futures_lite::io::{AsyncRead, AsyncWrite};
use futures_util::StreamExt;
use vncap_tests::peer::vnc_auth_response;

/// One WebSocket console connection.
pub struct Browser<S> {
    /// The WebSocket.
    pub ws: WebSocketStream<S>,
    inbox: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Browser<S> {
    /// Upgrades `stream` to a WebSocket at `url`; returns the browser and the
    /// server's `Sec-WebSocket-Protocol`, if any.
    pub async fn upgrade(stream: S, url: &str) -> (Browser<S>, Option<String>) {
        let (ws, response) = async_tungstenite::client_async(url, stream)
            .await
            .expect("upgrade");
        let protocol = response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap_or_default().to_string());
        (
            Browser {
                ws,
                inbox: Vec::new(),
            },
            protocol,
        )
    }

    /// [`Browser::upgrade`] with a request of one's own (extra headers,
    /// such as a proxy's `X-Forwarded-For`).
    pub async fn upgrade_request(
        stream: S,
        request: async_tungstenite::tungstenite::handshake::client::Request,
    ) -> Browser<S> {
        let (ws, _) = async_tungstenite::client_async(request, stream)
            .await
            .expect("upgrade");
        Browser {
            ws,
            inbox: Vec::new(),
        }
    }

    /// The next `n` bytes of the RFB stream.
    pub async fn take(&mut self, n: usize) -> Vec<u8> {
        while self.inbox.len() < n {
            match self.ws.next().await.expect("stream open").expect("frame") {
                Message::Binary(b) => self.inbox.extend_from_slice(&b),
                other => panic!("unexpected {other:?}"),
            }
        }
        self.inbox.drain(..n).collect()
    }

    /// Sends `bytes` as one binary message.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.ws.send(Message::binary(bytes.to_vec())).await.unwrap();
    }

    /// RFB 3.8 with VNC authentication, then ClientInit; returns the desktop
    /// name from ServerInit.
    pub async fn login(&mut self, password: &str) -> String {
        assert_eq!(self.take(12).await, b"RFB 003.008\n");
        self.send(b"RFB 003.008\n").await;
        assert_eq!(self.take(2).await, [1, 2], "VNC authentication only");
        self.send(&[2]).await;
        let challenge: [u8; 16] = self.take(16).await.try_into().unwrap();
        self.send(&vnc_auth_response(password.as_bytes(), &challenge))
            .await;
        assert_eq!(self.take(4).await, [0, 0, 0, 0], "SecurityResult OK");
        self.send(&[1]).await; // ClientInit, shared
        let init = self.take(24).await;
        let name_len = u32::from_be_bytes(init[20..24].try_into().unwrap()) as usize;
        String::from_utf8(self.take(name_len).await).unwrap()
    }
}
