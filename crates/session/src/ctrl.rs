//! baresip's control interface (`ctrl_tcp`): JSON messages framed as netstrings
//! (`12:{"a":"b"},`). The session sends commands (`dial`, `accept`, `hangup`, `mute`, `hold`,
//! `resume`, `sndcode`) and reads baresip's responses and events. baresip is a separate
//! process that reads the network: what it sends is bounded (one frame at most
//! [`MAX_FRAME`] bytes, read in one pass) and parsed into types, never passed on as text.

use serde::Deserialize;

/// The largest frame accepted; baresip's events are a few hundred bytes, its help text 1 KiB.
pub const MAX_FRAME: usize = 64 << 10;

/// Longest length prefix: the digits of [`MAX_FRAME`].
const MAX_DIGITS: usize = 5;

/// Why the byte stream from baresip is not netstrings (the connection is then dropped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a frame's length is not a decimal number")]
    Length,
    #[error("a frame of {0} bytes is over the limit of {MAX_FRAME}")]
    TooLong(usize),
    #[error("a frame does not end with ','")]
    Terminator,
}

/// Splits a byte stream into netstring frames; bounded: at most one frame is buffered.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Add bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame's payload, `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let digits = self.buf.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > MAX_DIGITS {
            return Err(FrameError::TooLong(usize::MAX));
        }
        if digits == self.buf.len() {
            return Ok(None); // the length is still arriving
        }
        if digits == 0 || self.buf[digits] != b':' || (digits > 1 && self.buf[0] == b'0') {
            return Err(FrameError::Length);
        }
        // At most MAX_DIGITS digits: the number fits.
        let len: usize = std::str::from_utf8(&self.buf[..digits])
            .map_err(|_| FrameError::Length)?
            .parse()
            .map_err(|_| FrameError::Length)?;
        if len > MAX_FRAME {
            return Err(FrameError::TooLong(len));
        }
        let end = digits + 1 + len;
        if self.buf.len() <= end {
            return Ok(None);
        }
        if self.buf[end] != b',' {
            return Err(FrameError::Terminator);
        }
        let payload = self.buf[digits + 1..end].to_vec();
        self.buf.drain(..=end);
        Ok(Some(payload))
    }
}

/// One frame for baresip.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{}:", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out.push(b',');
    out
}

/// A command for baresip (its `menu` module's command names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub command: &'static str,
    pub params: String,
    /// Returned in the response: which request it answers.
    pub token: String,
}

impl Command {
    /// The framed JSON message.
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::json!({
            "command": self.command,
            "params": self.params,
            "token": self.token,
        });
        frame(json.to_string().as_bytes())
    }
}

/// What baresip said, as far as the phone cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Event(Event),
    /// The answer to a command: whether it was carried out, baresip's text, the command's token.
    Response {
        ok: bool,
        data: String,
        token: String,
    },
    /// An event the phone does not use (SDP, RTCP statistics, module events).
    Other,
}

/// A call's or the registration's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Registering,
    Registered,
    /// The registration failed: baresip's reason (a SIP status or a network error).
    RegisterFailed(String),
    /// Someone calls: the call's id, the caller.
    Incoming {
        id: String,
        peer: Peer,
    },
    /// Our call rings at the other end (or is in progress).
    Ringing {
        id: String,
        peer: Peer,
    },
    Established {
        id: String,
        peer: Peer,
    },
    /// The call ended: baresip's reason ("Connection reset by user", "486 Busy Here", …).
    Closed {
        id: String,
        reason: String,
    },
    /// A DTMF digit from the other end.
    Dtmf {
        id: String,
        digit: char,
    },
}

/// The other end of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The SIP URI's user part ("2000"), or the whole URI when it has none.
    pub number: String,
    /// The display name, when the PBX sends one.
    pub name: Option<String>,
}

impl Peer {
    /// From a SIP URI and an optional display name.
    pub fn from_uri(uri: &str, name: Option<&str>) -> Peer {
        let bare = uri.trim().trim_start_matches('<').trim_end_matches('>');
        let rest = bare
            .strip_prefix("sips:")
            .or_else(|| bare.strip_prefix("sip:"))
            .or_else(|| bare.strip_prefix("tel:"))
            .unwrap_or(bare);
        let rest = rest.split([';', '?', '>']).next().unwrap_or(rest);
        let number = match rest.split_once('@') {
            Some((user, _)) if !user.is_empty() => user,
            _ => rest,
        };
        Peer {
            number: clip(number),
            name: name.map(str::trim).filter(|n| !n.is_empty()).map(clip),
        }
    }
}

/// Text shown on the page: at most 64 characters, no control characters.
fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// The fields of baresip's JSON messages the phone reads (all optional: events differ).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Raw {
    event: bool,
    response: bool,
    #[serde(rename = "type")]
    kind: String,
    class: String,
    peeruri: String,
    peerdisplayname: Option<String>,
    id: String,
    param: String,
    ok: bool,
    data: String,
    token: String,
}

/// Parse one frame's payload; `Err` when it is not a JSON object of baresip's.
pub fn parse(payload: &[u8]) -> Result<Message, serde_json::Error> {
    // serde would also read a JSON array into the struct: baresip sends objects only.
    let first = payload.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(serde::de::Error::custom("not a JSON object"));
    }
    let r: Raw = serde_json::from_slice(payload)?;
    if r.response {
        return Ok(Message::Response {
            ok: r.ok,
            data: r.data,
            token: r.token,
        });
    }
    if !r.event {
        return Ok(Message::Other);
    }
    Ok(event(r).map_or(Message::Other, Message::Event))
}

fn event(r: Raw) -> Option<Event> {
    let peer = || Peer::from_uri(&r.peeruri, r.peerdisplayname.as_deref());
    let id = r.id.clone();
    Some(match (r.class.as_str(), r.kind.as_str()) {
        ("register", "REGISTERING") => Event::Registering,
        ("register", "REGISTER_OK") => Event::Registered,
        ("register", "REGISTER_FAIL") => Event::RegisterFailed(clip(&r.param)),
        ("call", "CALL_INCOMING") => Event::Incoming { id, peer: peer() },
        ("call", "CALL_RINGING" | "CALL_PROGRESS" | "CALL_OUTGOING") => {
            Event::Ringing { id, peer: peer() }
        }
        ("call", "CALL_ESTABLISHED") => Event::Established { id, peer: peer() },
        ("call", "CALL_CLOSED") => Event::Closed {
            id,
            reason: clip(&r.param),
        },
        ("call", "CALL_DTMF_START") => Event::Dtmf {
            id,
            digit: r.param.chars().next().filter(|c| is_dtmf(*c))?,
        },
        _ => return None,
    })
}

/// The registration as baresip's `reginfo` command prints it ("sip:1001@pbx  OK", coloured):
/// `None` while it has not been tried yet.
pub fn reginfo(data: &str) -> Option<Event> {
    // Without its terminal colours: ESC [ ... m.
    let mut plain = String::with_capacity(data.len());
    let mut esc = false;
    for c in data.chars() {
        match (esc, c) {
            (false, '\u{1b}') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => plain.push(c),
        }
    }
    // The current user agent's line may be marked with '>'.
    let line = plain
        .lines()
        .map(|l| l.trim().trim_start_matches('>').trim_start())
        .find(|l| l.starts_with("sip"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.contains(&"OK") {
        Some(Event::Registered)
    } else if words.contains(&"ERR") {
        Some(Event::RegisterFailed(clip(line)))
    } else {
        None
    }
}

/// The keys of a phone's keypad.
pub fn is_dtmf(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(bytes: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut d = Decoder::default();
        d.push(bytes);
        let mut out = vec![];
        while let Some(f) = d.next_frame()? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn netstrings_are_split_also_when_they_arrive_byte_by_byte() {
        let two = b"3:abc,0:,";
        assert_eq!(frames(two).unwrap(), vec![b"abc".to_vec(), vec![]]);
        let mut d = Decoder::default();
        let mut got = vec![];
        for b in two {
            d.push(&[*b]);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, vec![b"abc".to_vec(), vec![]]);
        assert_eq!(frame(b"abc"), b"3:abc,");
    }

    #[test]
    fn malformed_netstrings_are_refused() {
        for (bytes, want) in [
            (&b":abc,"[..], FrameError::Length),
            (b"x3:abc,", FrameError::Length),
            (b"03:abc,", FrameError::Length),
            (b"3:abcd", FrameError::Terminator),
            (b"999999:", FrameError::TooLong(usize::MAX)),
            (b"65537:", FrameError::TooLong(65537)),
            (b"POST / HTTP/1.1\r\n", FrameError::Length),
        ] {
            assert_eq!(
                frames(bytes),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn any_bytes_end_in_frames_an_error_or_a_wait_and_never_buffer_more_than_one_frame() {
        // A deterministic walk over many inputs (the fuzz target does more).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut d = Decoder::default();
            for _ in 0..8 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let n = (x % 12) as usize;
                let alphabet = b"0123456789:,{}a";
                let chunk: Vec<u8> = (0..n)
                    .map(|i| alphabet[((x >> (i * 4)) % alphabet.len() as u64) as usize])
                    .collect();
                d.push(&chunk);
                match d.next_frame() {
                    Ok(_) => assert!(d.buf.len() <= MAX_FRAME + MAX_DIGITS + 2),
                    Err(_) => break,
                }
            }
        }
    }

    #[test]
    fn baresip_s_events_become_the_phone_s_events() {
        let cases: &[(&str, Message)] = &[
            (
                r#"{"event":true,"type":"CALL_INCOMING","class":"call","accountaor":"sip:b@x","direction":"incoming","peeruri":"sip:2000@pbx.example","id":"487e","param":"sip:2000@pbx.example"}"#,
                Message::Event(Event::Incoming {
                    id: "487e".into(),
                    peer: Peer {
                        number: "2000".into(),
                        name: None,
                    },
                }),
            ),
            (
                r#"{"event":true,"type":"CALL_INCOMING","class":"call","peeruri":"<sip:+4930123@pbx;user=phone>","peerdisplayname":"Amt\u0007 Kasse","id":"1"}"#,
                Message::Event(Event::Incoming {
                    id: "1".into(),
                    peer: Peer {
                        number: "+4930123".into(),
                        name: Some("Amt Kasse".into()),
                    },
                }),
            ),
            (
                r#"{"event":true,"type":"CALL_RINGING","class":"call","peeruri":"sip:2001@pbx","id":"2"}"#,
                Message::Event(Event::Ringing {
                    id: "2".into(),
                    peer: Peer {
                        number: "2001".into(),
                        name: None,
                    },
                }),
            ),
            (
                r#"{"event":true,"type":"CALL_CLOSED","class":"call","id":"2","param":"486 Busy Here"}"#,
                Message::Event(Event::Closed {
                    id: "2".into(),
                    reason: "486 Busy Here".into(),
                }),
            ),
            (
                r#"{"event":true,"type":"REGISTER_OK","class":"register","param":"200 OK"}"#,
                Message::Event(Event::Registered),
            ),
            (
                r#"{"event":true,"type":"REGISTER_FAIL","class":"register","param":"403 Forbidden"}"#,
                Message::Event(Event::RegisterFailed("403 Forbidden".into())),
            ),
            (
                r#"{"event":true,"type":"CALL_DTMF_START","class":"call","id":"3","param":"5"}"#,
                Message::Event(Event::Dtmf {
                    id: "3".into(),
                    digit: '5',
                }),
            ),
            (
                r#"{"event":true,"type":"CALL_DTMF_START","class":"call","id":"3","param":"x"}"#,
                Message::Other,
            ),
            (
                r#"{"event":true,"type":"CALL_RTCP","class":"call","id":"3","rtcp_stats":{"tx":{"sent":0}}}"#,
                Message::Other,
            ),
            (
                r#"{"response":true,"ok":true,"data":"\ncall muted\n","token":"7"}"#,
                Message::Response {
                    ok: true,
                    data: "\ncall muted\n".into(),
                    token: "7".into(),
                },
            ),
        ];
        for (json, want) in cases {
            assert_eq!(&parse(json.as_bytes()).unwrap(), want, "{json}");
        }
        for bad in [&b"[]"[..], b"\"x\"", b"{\"event\":1}", b"{", b"\xff"] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_command_is_one_netstring_of_json() {
        let c = Command {
            command: "dial",
            params: "2000".into(),
            token: "1".into(),
        };
        let bytes = c.encode();
        let mut d = Decoder::default();
        d.push(&bytes);
        let payload = d.next_frame().unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(v["command"], "dial");
        assert_eq!(v["params"], "2000");
        assert_eq!(v["token"], "1");
    }

    #[test]
    fn reginfo_says_whether_the_phone_is_registered() {
        let ok = "\n--- User Agents (1) ---\n> sip:1001@pbx.example                     \u{1b}[32mOK \u{1b}[;m\n\n";
        assert_eq!(
            reginfo(ok),
            Some(Event::Registered),
            "the current UA's line"
        );
        let ok = "\n--- User Agents (1) ---\nsip:1001@pbx.example \u{1b}[32mOK \u{1b}[;m\n";
        assert_eq!(reginfo(ok), Some(Event::Registered));
        let err = "sip:1001@pbx.example \u{1b}[31mERR\u{1b}[;m\n";
        assert!(matches!(reginfo(err), Some(Event::RegisterFailed(_))));
        assert_eq!(reginfo("sip:1001@pbx.example zzz\n"), None);
        assert_eq!(reginfo(""), None);
    }

    #[test]
    fn peers_are_read_from_any_uri_form() {
        for (uri, number) in [
            ("sip:2000@pbx", "2000"),
            ("sips:2000@pbx:5061;transport=tls", "2000"),
            ("<sip:2000@pbx>", "2000"),
            ("tel:+49301234", "+49301234"),
            ("sip:pbx.example", "pbx.example"),
            ("", ""),
        ] {
            assert_eq!(Peer::from_uri(uri, None).number, number, "{uri}");
        }
        let long = format!("sip:{}@x", "9".repeat(500));
        assert_eq!(Peer::from_uri(&long, None).number.len(), 64);
    }
}
