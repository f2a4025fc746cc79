//! The kiosk page's server: the phone page and its API on loopback ([`KIOSK_ADDR`]), built on
//! `tiny_http` (a small synchronous HTTP/1.1 server without an async runtime, which the
//! session, a handful of threads, does not need). State is pushed to the page as server-sent
//! events; the page's requests are `POST /request` with a JSON body.
//!
//! Only the kiosk's page may use it ([`route`]): the `Host` must be the kiosk's address (no
//! other name resolving to 127.0.0.1 reaches it: DNS rebinding), an `Origin` or
//! `Sec-Fetch-Site` must say the kiosk's own origin, and the API wants the token that only the
//! page's HTML carries (a page of another origin cannot read it: no CORS headers are ever
//! sent, and a custom header forces a preflight this server refuses). The page cannot be
//! framed.

use std::io::{Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use homestick_formats::paths::KIOSK_ADDR;
use tiny_http::{Header, Response, Server};

use crate::phone::Request;

/// The largest request body.
pub const MAX_BODY: usize = 4096;
/// Event streams open at once (the kiosk has one page; a reload opens another).
const MAX_STREAMS: usize = 4;

const PAGE: &str = include_str!("../page/phone.html");
const SCRIPT: &str = include_str!("../page/phone.js");
const STYLE: &str = include_str!("../page/phone.css");

/// The token's header on `POST /request`.
pub const TOKEN_HEADER: &str = "X-Homestick-Token";

/// What a request may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Page,
    Script,
    Style,
    Events,
    Request,
}

/// Why a request is refused (the status code and a word for the journal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Deny {
    #[error("Host is not the kiosk's address")]
    Host,
    #[error("from another origin")]
    Origin,
    #[error("without the page's token")]
    Token,
    #[error("no such page")]
    NotFound,
    #[error("method not allowed")]
    Method,
}

impl Deny {
    pub fn status(self) -> u16 {
        match self {
            Deny::Host => 421,
            Deny::Origin | Deny::Token => 403,
            Deny::NotFound => 404,
            Deny::Method => 405,
        }
    }
}

/// The headers [`route`] looks at.
#[derive(Debug, Clone, Default)]
pub struct Seen<'a> {
    pub host: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub fetch_site: Option<&'a str>,
    /// `Sec-Fetch-Mode` and `Sec-Fetch-Dest`: a top-level navigation is `navigate` and `document`.
    pub fetch_mode: Option<&'a str>,
    pub fetch_dest: Option<&'a str>,
    pub token: Option<&'a str>,
}

impl Seen<'_> {
    /// The browser opens a page in its window (typed, a link, a redirect, the status page's
    /// refresh from `file://`): it may come from anywhere, since what is opened cannot be read
    /// by the page that opened it, and ours refuses to be framed.
    fn top_level(&self) -> bool {
        self.fetch_mode == Some("navigate") && self.fetch_dest == Some("document")
    }
}

/// Equal without an early exit (the token is compared this way).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Which route a request takes, or why it is refused; `token` is the page's.
pub fn route(method: &str, url: &str, h: &Seen, token: &str) -> Result<Route, Deny> {
    if h.host != Some(KIOSK_ADDR) {
        return Err(Deny::Host);
    }
    let origin = format!("http://{KIOSK_ADDR}");
    if h.origin.is_some_and(|o| o != origin) {
        return Err(Deny::Origin);
    }
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let fetch_ok = |page: bool| match h.fetch_site {
        None | Some("same-origin") => true,
        Some(_) => page && h.top_level(),
    };
    let route = match (method, path) {
        ("GET", "/") => Route::Page,
        ("GET", "/phone.js") => Route::Script,
        ("GET", "/phone.css") => Route::Style,
        ("GET", "/events") => Route::Events,
        ("POST", "/request") => Route::Request,
        (_, "/" | "/phone.js" | "/phone.css" | "/events" | "/request") => return Err(Deny::Method),
        _ => return Err(Deny::NotFound),
    };
    // The page itself is opened in the browser's window; all else comes from the page.
    if !fetch_ok(route == Route::Page) {
        return Err(Deny::Origin);
    }
    let given = match route {
        Route::Events => query.strip_prefix("token="),
        Route::Request => h.token,
        _ => return Ok(route),
    };
    match given {
        Some(t) if same(t, token) => Ok(route),
        _ => Err(Deny::Token),
    }
}

/// A request from the page, and where to send the answer (`Err`: German and English why not).
pub type PageRequest = (Request, Sender<Result<(), (String, String)>>);

/// The state pushed to the page, and the open event streams.
#[derive(Debug, Default)]
struct Shared {
    view: String,
    streams: Vec<SyncSender<String>>,
}

/// The running server: publish the page's state with [`Api::publish`].
#[derive(Debug, Clone)]
pub struct Api {
    shared: Arc<Mutex<Shared>>,
}

impl Api {
    /// Listen on [`KIOSK_ADDR`]; the page's requests arrive on `requests`.
    pub fn start(requests: Sender<PageRequest>) -> std::io::Result<Api> {
        let server = Server::http(KIOSK_ADDR).map_err(std::io::Error::other)?;
        let token = new_token()?;
        let api = Api {
            shared: Arc::default(),
        };
        let shared = api.shared.clone();
        std::thread::spawn(move || {
            for req in server.incoming_requests() {
                handle(req, &token, &shared, &requests);
            }
        });
        Ok(api)
    }

    /// The page's new state (JSON); every open page gets it.
    pub fn publish(&self, view: String) {
        let Ok(mut s) = self.shared.lock() else {
            return; // a handler panicked: nothing is served any more
        };
        // A stream that is full (its page does not read) or gone is dropped.
        s.streams.retain(|t| {
            !matches!(
                t.try_send(view.clone()),
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_))
            )
        });
        s.view = view;
    }
}

/// 128 bits from the kernel, hex.
fn new_token() -> std::io::Result<String> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn header(name: &str, value: &str) -> Header {
    // Names and values here are constants and hex: always valid header text.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap_or_else(|_| {
        Header::from_bytes(&b"X-Invalid"[..], &b"1"[..]).unwrap_or_else(|_| unreachable!())
    })
}

/// The headers of every answer: nothing cached, nothing framed, nothing from elsewhere.
fn hardened<R: Read>(mut r: Response<R>, kind: &str) -> Response<R> {
    for (n, v) in [
        ("Content-Type", kind),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("Cross-Origin-Resource-Policy", "same-origin"),
        (
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    ] {
        r.add_header(header(n, v));
    }
    r
}

fn text(status: u16, body: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    hardened(
        Response::from_string(body).with_status_code(status),
        "text/plain; charset=utf-8",
    )
}

fn handle(
    mut req: tiny_http::Request,
    token: &str,
    shared: &Arc<Mutex<Shared>>,
    requests: &Sender<PageRequest>,
) {
    let get = |name: &'static str| {
        req.headers()
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str().to_string())
    };
    let (host, origin, site, tok) = (
        get("Host"),
        get("Origin"),
        get("Sec-Fetch-Site"),
        get(TOKEN_HEADER),
    );
    let (mode, dest) = (get("Sec-Fetch-Mode"), get("Sec-Fetch-Dest"));
    let seen = Seen {
        host: host.as_deref(),
        origin: origin.as_deref(),
        fetch_site: site.as_deref(),
        fetch_mode: mode.as_deref(),
        fetch_dest: dest.as_deref(),
        token: tok.as_deref(),
    };
    let method = req.method().to_string();
    let url = req.url().to_string();
    let answer = match route(&method, &url, &seen, token) {
        Err(d) => {
            // For the journal: who tried what (the path without its query: no token in logs).
            let path = url.split('?').next().unwrap_or_default();
            eprintln!("homestick-session: kiosk page: refused {method} {path}: {d}");
            text(d.status(), &d.to_string())
        }
        Ok(Route::Page) => hardened(
            Response::from_string(PAGE.replace("{{TOKEN}}", token)),
            "text/html; charset=utf-8",
        ),
        Ok(Route::Script) => hardened(Response::from_string(SCRIPT), "text/javascript"),
        Ok(Route::Style) => hardened(Response::from_string(STYLE), "text/css"),
        Ok(Route::Events) => return stream(req, shared),
        Ok(Route::Request) => page_request(&mut req, requests),
    };
    // The page went away before its answer: nothing to do.
    let _ = req.respond(answer);
}

/// `POST /request`: the JSON body to the session, its answer back.
fn page_request(
    req: &mut tiny_http::Request,
    requests: &Sender<PageRequest>,
) -> Response<std::io::Cursor<Vec<u8>>> {
    if req.body_length().is_some_and(|n| n > MAX_BODY) {
        return text(413, "request too large");
    }
    let mut body = Vec::new();
    if req
        .as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .is_err()
        || body.len() > MAX_BODY
    {
        return text(413, "request too large");
    }
    let Ok(r) = serde_json::from_slice::<Request>(&body) else {
        return text(400, "not a request of the phone page");
    };
    let (tx, rx) = std::sync::mpsc::channel();
    if requests.send((r, tx)).is_err() {
        return text(503, "the session is ending");
    }
    match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(())) => text(200, "ok"),
        Ok(Err((de, en))) => hardened(
            Response::from_string(serde_json::json!({ "de": de, "en": en }).to_string())
                .with_status_code(409),
            "application/json",
        ),
        Err(_) => text(503, "the session did not answer"),
    }
}

/// `GET /events`: the state now, then each new one, as server-sent events; a comment every
/// 15 seconds so that a page whose connection broke finds out and reconnects.
fn stream(req: tiny_http::Request, shared: &Arc<Mutex<Shared>>) {
    let (tx, rx) = sync_channel::<String>(16);
    let first = match shared.lock() {
        Ok(mut s) => {
            if s.streams.len() >= MAX_STREAMS {
                s.streams.remove(0);
            }
            s.streams.push(tx);
            s.view.clone()
        }
        Err(_) => return,
    };
    let mut w = req.into_writer();
    std::thread::spawn(move || {
        let head =
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\
                    X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n";
        if w.write_all(head.as_bytes()).is_err() || send(&mut w, &first).is_err() {
            return;
        }
        pump(&mut w, &rx);
    });
}

fn send(w: &mut dyn Write, view: &str) -> std::io::Result<()> {
    if !view.is_empty() {
        // JSON from serde has no newline: one data line.
        write!(w, "data: {view}\n\n")?;
    }
    w.flush()
}

fn pump(w: &mut dyn Write, rx: &Receiver<String>) {
    loop {
        let r = match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(view) => send(w, &view),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                w.write_all(b": still here\n\n").and_then(|_| w.flush())
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        };
        if r.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "0123456789abcdef0123456789abcdef";

    /// One request as the table writes it: `nav` marks a top-level navigation.
    struct Case {
        method: &'static str,
        url: String,
        host: &'static str,
        origin: Option<String>,
        site: Option<&'static str>,
        nav: bool,
        token: Option<&'static str>,
    }

    fn case(method: &'static str, url: &str, site: Option<&'static str>) -> Case {
        Case {
            method,
            url: url.to_string(),
            host: KIOSK_ADDR,
            origin: None,
            site,
            nav: false,
            token: None,
        }
    }

    impl Case {
        fn host(self, host: &'static str) -> Case {
            Case { host, ..self }
        }
        fn origin(self, o: &str) -> Case {
            Case {
                origin: Some(o.to_string()),
                ..self
            }
        }
        fn nav(self) -> Case {
            Case { nav: true, ..self }
        }
        fn token(self, token: &'static str) -> Case {
            Case {
                token: Some(token),
                ..self
            }
        }
        fn route(&self) -> Result<Route, Deny> {
            let (mode, dest) = match self.nav {
                true => (Some("navigate"), Some("document")),
                false => (Some("no-cors"), Some("script")),
            };
            let seen = Seen {
                host: Some(self.host),
                origin: self.origin.as_deref(),
                fetch_site: self.site,
                fetch_mode: mode,
                fetch_dest: dest,
                token: self.token,
            };
            route(self.method, &self.url, &seen, T)
        }
    }

    #[test]
    fn only_the_kiosk_s_own_page_reaches_the_api() {
        let me = format!("http://{KIOSK_ADDR}");
        let ev = format!("/events?token={T}");
        let (same, cross) = (Some("same-origin"), Some("cross-site"));
        let other = "0123456789abcdef0123456789abcdee";
        #[rustfmt::skip]
        let cases: Vec<(Case, Result<Route, Deny>)> = vec![
            // The page: typed, or opened by the status page's refresh from file://.
            (case("GET", "/", Some("none")).nav(), Ok(Route::Page)),
            (case("GET", "/", cross).nav(), Ok(Route::Page)),
            (case("GET", "/", None), Ok(Route::Page)),
            (case("GET", "/phone.js", same), Ok(Route::Script)),
            (case("GET", &ev, same), Ok(Route::Events)),
            (case("POST", "/request", same).origin(&me).token(T), Ok(Route::Request)),
            // DNS rebinding: another name for 127.0.0.1.
            (case("GET", "/", None).host("evil.example:8321"), Err(Deny::Host)),
            (case("GET", "/", None).host("localhost:8321"), Err(Deny::Host)),
            // Another site reading the page (and its token) as a resource, not opening it.
            (case("GET", "/", cross), Err(Deny::Origin)),
            (case("GET", "/", Some("same-site")), Err(Deny::Origin)),
            (case("GET", "/phone.js", cross).nav(), Err(Deny::Origin)),
            // An intranet page posting to the phone, or opening the API in a window.
            (case("POST", "/request", cross).origin("https://intranet.example").token(T), Err(Deny::Origin)),
            (case("POST", "/request", cross).token(T), Err(Deny::Origin)),
            (case("GET", &ev, Some("same-site")), Err(Deny::Origin)),
            (case("GET", &ev, cross).nav(), Err(Deny::Origin)),
            (case("POST", "/request", None).origin("null").token(T), Err(Deny::Origin)),
            (case("POST", "/request", Some("none")).token(T), Err(Deny::Origin)),
            // The API wants the token; the page wants none.
            (case("POST", "/request", same).origin(&me), Err(Deny::Token)),
            (case("POST", "/request", None).origin(&me).token(other), Err(Deny::Token)),
            (case("GET", "/events", None), Err(Deny::Token)),
            (case("GET", "/events?token=", None), Err(Deny::Token)),
            (case("OPTIONS", "/request", None).origin(&me), Err(Deny::Method)),
            (case("GET", "/request", None).token(T), Err(Deny::Method)),
            (case("GET", "/../etc/passwd", None), Err(Deny::NotFound)),
        ];
        let mut failed = vec![];
        for (c, want) in &cases {
            let got = c.route();
            if &got != want {
                let (m, u, h, o, s, n) = (c.method, &c.url, c.host, &c.origin, c.site, c.nav);
                failed.push(format!(
                    "{m} {u} host {h} origin {o:?} site {s:?} navigation {n}: {got:?}, want {want:?}"
                ));
            }
        }
        assert!(failed.is_empty(), "{}", failed.join("\n"));
    }

    #[test]
    fn the_page_carries_its_token_and_loads_only_its_own_files() {
        let html = PAGE.replace("{{TOKEN}}", T);
        assert!(html.contains(&format!("content=\"{T}\"")));
        assert!(html.contains("src=\"/phone.js\"") && html.contains("href=\"/phone.css\""));
        assert!(
            !html.contains("<script>") && !html.contains("style=\""),
            "inline code would need a weaker policy"
        );
        assert!(SCRIPT.contains("EventSource") && SCRIPT.contains(TOKEN_HEADER));
    }

    #[test]
    fn tokens_differ_and_are_128_bits() {
        let a = new_token().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, new_token().unwrap());
        assert!(same(&a, &a.clone()) && !same(&a, "") && !same(&a, &a[1..]));
    }
}
