//! The phone as the kiosk page shows it: registration, the call (ringing, connected, muted,
//! held), the calls of this session (in RAM only), and what the page may ask for. baresip's
//! events ([`crate::ctrl::Event`]) move it; the page's requests become baresip commands only
//! when they make sense in the current state. Pure: the session feeds it and serves its
//! [`View`].

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::ctrl::{is_dtmf, Command, Event, Peer};

/// How many calls the session list keeps.
pub const HISTORY: usize = 50;
/// The longest number the dial pad takes.
pub const MAX_NUMBER: usize = 32;

/// The registration with the office's PBX.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "kebab-case")]
pub enum Registration {
    /// baresip is not (yet) running or has not tried.
    Starting,
    Registering,
    Registered,
    /// Refused or failed: the reason.
    Failed(String),
}

/// Where a call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallState {
    /// Dialled, no answer from the PBX yet.
    Dialing,
    /// Ringing at the other end.
    Ringing,
    /// Someone calls this phone.
    Incoming,
    Connected,
}

/// The call on the phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Call {
    /// baresip's call id (empty until baresip names it).
    #[serde(skip)]
    pub id: String,
    pub outgoing: bool,
    pub number: String,
    pub name: Option<String>,
    pub state: CallState,
    pub muted: bool,
    pub held: bool,
    /// When it started ringing or was dialled (seconds since the epoch).
    pub started: u64,
    /// When it was answered.
    pub connected: Option<u64>,
    /// The digits sent during the call (the last [`MAX_NUMBER`]).
    pub dtmf: String,
}

/// One call of this session, for the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    pub outgoing: bool,
    pub number: String,
    pub name: Option<String>,
    /// It was connected (an incoming call that was not: missed).
    pub answered: bool,
    pub at: u64,
    pub seconds: u64,
    /// Why it ended, as the PBX or baresip said.
    pub reason: String,
}

/// What the page asks for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "do", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    Dial {
        number: String,
    },
    // Empty braces, not unit variants: serde's deny_unknown_fields holds only for these.
    Answer {},
    Reject {},
    Hangup {},
    Mute {
        on: bool,
    },
    Hold {
        on: bool,
    },
    Dtmf {
        digit: char,
    },
    /// The sound card for calls and the ring (ALSA's card number of an output or an input).
    Output {
        id: u32,
    },
    Input {
        id: u32,
    },
    /// The output's volume, 0 to 100 %.
    Volume {
        percent: u8,
    },
}

/// Why a request is not carried out (the page says it in both languages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the number may have 1 to {MAX_NUMBER} of 0-9 * # and a leading +")]
    Number,
    #[error("the phone is not registered")]
    NotRegistered,
    #[error("there is a call already")]
    Busy,
    #[error("there is no call for this")]
    NoCall,
    #[error("not a key of the keypad")]
    Digit,
    #[error("no such sound device, or the sound does not run")]
    Sound,
}

impl Refusal {
    /// The sentence for the page (German, English).
    pub fn words(&self) -> (&'static str, &'static str) {
        match self {
            Refusal::Number => (
                "Die Nummer darf nur 0–9, * und # enthalten (höchstens 32 Zeichen, + am Anfang).",
                "The number may hold only 0–9, * and # (32 characters at most, + at the start).",
            ),
            Refusal::NotRegistered => (
                "Das Telefon ist noch nicht angemeldet.",
                "The phone is not signed in yet.",
            ),
            Refusal::Busy => ("Es läuft schon ein Anruf.", "There is a call already."),
            Refusal::NoCall => ("Kein passender Anruf.", "No call for this."),
            Refusal::Digit => ("Keine Taste des Tastenfelds.", "Not a key of the keypad."),
            Refusal::Sound => (
                "Dieses Tongerät gibt es nicht (mehr), oder der Ton läuft nicht.",
                "This sound device is not (or no longer) there, or the sound is not running.",
            ),
        }
    }
}

/// The phone's state.
#[derive(Debug, Clone)]
pub struct Phone {
    pub registration: Registration,
    pub call: Option<Call>,
    /// Newest first, at most [`HISTORY`].
    pub history: VecDeque<Record>,
    /// Calls that came in while another was on: they end in the list as missed.
    waiting: BTreeMap<String, (Peer, u64)>,
    /// Commands sent and not yet answered: their token and what they were for.
    pending: BTreeMap<String, Request>,
    next_token: u64,
    /// The last thing that went wrong with a request or a call (German, English).
    pub notice: Option<(String, String)>,
}

impl Default for Phone {
    fn default() -> Self {
        Phone {
            registration: Registration::Starting,
            call: None,
            history: VecDeque::new(),
            waiting: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_token: 1,
            notice: None,
        }
    }
}

/// A dialable number: 1 to [`MAX_NUMBER`] of `0-9 * #`, `+` only first.
pub fn number_ok(n: &str) -> bool {
    let body = n.strip_prefix('+').unwrap_or(n);
    !body.is_empty()
        && n.len() <= MAX_NUMBER
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
}

/// The own number as the page shows it: a SIP user name a person can read and say (digits,
/// letters, `+ * # . - _`); an image made for a whole customer holds a roster's `{{slot}}`
/// there, which is no number.
pub fn own_number(user: &str) -> Option<&str> {
    let readable = |c: char| c.is_ascii_alphanumeric() || "+*#.-_".contains(c);
    (!user.is_empty() && user.len() <= MAX_NUMBER && user.chars().all(readable)).then_some(user)
}

impl Phone {
    /// A request from the page: the command for baresip, or why not. The state changes only
    /// where baresip's answer or event will confirm it (mute and hold are shown at once and
    /// taken back if baresip refuses).
    pub fn request(&mut self, r: Request, now: u64) -> Result<Command, Refusal> {
        let (command, params) = self.command_for(&r)?;
        match &r {
            Request::Dial { number } => {
                self.call = Some(Call {
                    id: String::new(),
                    outgoing: true,
                    number: number.clone(),
                    name: None,
                    state: CallState::Dialing,
                    muted: false,
                    held: false,
                    started: now,
                    connected: None,
                    dtmf: String::new(),
                })
            }
            Request::Mute { on } => self.with_call(|c| c.muted = *on),
            Request::Hold { on } => self.with_call(|c| c.held = *on),
            Request::Dtmf { digit } => self.with_call(|c| {
                c.dtmf.push(*digit);
                if c.dtmf.len() > MAX_NUMBER {
                    c.dtmf.remove(0);
                }
            }),
            _ => {}
        }
        let token = self.next_token.to_string();
        self.next_token += 1;
        self.pending.insert(token.clone(), r);
        self.notice = None;
        Ok(Command {
            command,
            params,
            token,
        })
    }

    fn with_call(&mut self, f: impl FnOnce(&mut Call)) {
        if let Some(c) = self.call.as_mut() {
            f(c);
        }
    }

    /// baresip's command and its parameter for a request, checked against the state.
    fn command_for(&self, r: &Request) -> Result<(&'static str, String), Refusal> {
        let call = self.call.as_ref();
        let state = call.map(|c| c.state);
        let connected = state == Some(CallState::Connected);
        Ok(match r {
            Request::Dial { number } => {
                if !number_ok(number) {
                    return Err(Refusal::Number);
                }
                if self.registration != Registration::Registered {
                    return Err(Refusal::NotRegistered);
                }
                if call.is_some() {
                    return Err(Refusal::Busy);
                }
                ("dial", number.clone())
            }
            Request::Answer {} if state == Some(CallState::Incoming) => ("accept", String::new()),
            Request::Reject {} if state == Some(CallState::Incoming) => ("hangup", String::new()),
            Request::Hangup {} if call.is_some() => ("hangup", String::new()),
            // baresip's "mute" switches: sent only when it changes something.
            Request::Mute { on } if connected && call.is_some_and(|c| c.muted != *on) => {
                ("mute", String::new())
            }
            Request::Hold { on } if connected && call.is_some_and(|c| c.held != *on) => {
                (if *on { "hold" } else { "resume" }, String::new())
            }
            Request::Dtmf { digit } if !is_dtmf(*digit) => return Err(Refusal::Digit),
            Request::Dtmf { digit } if connected => ("sndcode", digit.to_string()),
            // The sound service's, not baresip's.
            Request::Output { .. } | Request::Input { .. } | Request::Volume { .. } => {
                return Err(Refusal::Sound)
            }
            _ => return Err(Refusal::NoCall),
        })
    }

    /// baresip answered the command with `token`.
    pub fn response(&mut self, token: &str, ok: bool, data: &str) {
        let Some(r) = self.pending.remove(token) else {
            return;
        };
        if ok {
            return;
        }
        match r {
            Request::Mute { on } => self.with_call(|c| c.muted = !on),
            Request::Hold { on } => self.with_call(|c| c.held = !on),
            // A dial that baresip refused at once: no call.
            Request::Dial { .. }
                if self
                    .call
                    .as_ref()
                    .is_some_and(|c| c.state == CallState::Dialing && c.id.is_empty()) =>
            {
                self.call = None;
            }
            _ => {}
        }
        let why: String = data.chars().filter(|c| !c.is_control()).take(120).collect();
        self.notice = Some((
            format!("Das Telefon hat abgelehnt: {why}"),
            format!("The phone refused: {why}"),
        ));
    }

    /// An event from baresip.
    pub fn event(&mut self, e: Event, now: u64) {
        match e {
            Event::Registering if self.registration != Registration::Registered => {
                self.registration = Registration::Registering
            }
            Event::Registering => {}
            Event::Registered => self.registration = Registration::Registered,
            Event::RegisterFailed(why) => self.registration = Registration::Failed(why),
            Event::Incoming { id, peer } => self.incoming(id, peer, now),
            Event::Ringing { id, peer } => self.progress(&id, peer, CallState::Ringing, now),
            Event::Established { id, peer } => self.progress(&id, peer, CallState::Connected, now),
            Event::Closed { id, reason } => self.closed(&id, reason, now),
            Event::Dtmf { .. } => {}
        }
    }

    fn incoming(&mut self, id: String, peer: Peer, now: u64) {
        if self.call.is_some() {
            self.waiting.insert(id, (peer, now));
            return;
        }
        self.call = Some(Call {
            id,
            outgoing: false,
            number: peer.number,
            name: peer.name,
            state: CallState::Incoming,
            muted: false,
            held: false,
            started: now,
            connected: None,
            dtmf: String::new(),
        });
    }

    /// Whether `id` is the call on the phone (a dialled call takes the first id baresip gives).
    fn is_current(&mut self, id: &str) -> bool {
        match self.call.as_mut() {
            Some(c) if c.id == id => true,
            Some(c) if c.id.is_empty() && c.outgoing => {
                c.id = id.to_string();
                true
            }
            _ => false,
        }
    }

    fn progress(&mut self, id: &str, peer: Peer, state: CallState, now: u64) {
        if !self.is_current(id) {
            return;
        }
        let Some(c) = self.call.as_mut() else {
            return;
        };
        if c.name.is_none() {
            c.name = peer.name;
        }
        if state == CallState::Connected && c.connected.is_none() {
            c.connected = Some(now);
        }
        // Ringing after connected (a re-INVITE's progress) does not go back.
        if c.state != CallState::Connected {
            c.state = state;
        }
    }

    fn closed(&mut self, id: &str, reason: String, now: u64) {
        if let Some((peer, at)) = self.waiting.remove(id) {
            self.remember(Record {
                outgoing: false,
                number: peer.number,
                name: peer.name,
                answered: false,
                at,
                seconds: 0,
                reason,
            });
            return;
        }
        if !self.is_current(id) {
            return;
        }
        let Some(c) = self.call.take() else {
            return;
        };
        self.remember(Record {
            outgoing: c.outgoing,
            number: c.number,
            name: c.name,
            answered: c.connected.is_some(),
            at: c.started,
            seconds: c.connected.map_or(0, |t| now.saturating_sub(t)),
            reason,
        });
    }

    fn remember(&mut self, r: Record) {
        self.history.push_front(r);
        self.history.truncate(HISTORY);
    }
}

/// What the page shows: the customer, the session's state and the phone.
#[derive(Debug, Serialize)]
pub struct View<'a> {
    pub customer: &'a str,
    pub hotline: Option<&'a str>,
    /// "de", "en" or both, as the profile says (none: both).
    pub languages: &'a [String],
    /// The session's step: network, vpn, vpn-up, sip-registered, vpn-down, error.
    pub session: &'a str,
    /// The last thing the session could not do (German, English).
    pub message: Option<&'a (String, String)>,
    pub secure_boot_off: bool,
    pub own_number: Option<&'a str>,
    pub registration: &'a Registration,
    pub call: Option<&'a Call>,
    pub history: &'a VecDeque<Record>,
    pub notice: Option<&'a (String, String)>,
    /// The PC's sound devices and volume (none: no sound server, the page shows no choice).
    pub sound: Option<&'a crate::sound::SoundView>,
    /// The session's clock (seconds since the epoch): the page counts call time from it.
    pub now: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: &str) -> Peer {
        Peer {
            number: n.into(),
            name: None,
        }
    }

    fn registered() -> Phone {
        let mut p = Phone::default();
        p.event(Event::Registering, 0);
        assert_eq!(p.registration, Registration::Registering);
        p.event(Event::Registered, 0);
        // A refresh does not show "registering" again.
        p.event(Event::Registering, 1);
        assert_eq!(p.registration, Registration::Registered);
        p
    }

    #[test]
    fn the_own_number_is_shown_only_when_it_is_one() {
        for (user, shown) in [
            ("202", true),
            ("+4955551234202", true),
            ("anna.becker", true),
            ("{{sip.extension}}", false),
            ("", false),
            ("<script>", false),
            ("a b", false),
            (&"1".repeat(MAX_NUMBER + 1), false),
        ] {
            assert_eq!(own_number(user).is_some(), shown, "{user:?}");
        }
    }

    #[test]
    fn an_incoming_call_rings_is_answered_and_ends_in_the_list() {
        let mut p = registered();
        p.event(
            Event::Incoming {
                id: "a".into(),
                peer: peer("2000"),
            },
            10,
        );
        let c = p.call.clone().unwrap();
        assert_eq!(
            (c.state, c.number.as_str(), c.outgoing),
            (CallState::Incoming, "2000", false)
        );
        let cmd = p.request(Request::Answer {}, 12).unwrap();
        assert_eq!(cmd.command, "accept");
        p.response(&cmd.token, true, "");
        p.event(
            Event::Established {
                id: "a".into(),
                peer: peer("2000"),
            },
            13,
        );
        assert_eq!(p.call.as_ref().unwrap().state, CallState::Connected);
        assert_eq!(p.call.as_ref().unwrap().connected, Some(13));
        let cmd = p.request(Request::Hangup {}, 40).unwrap();
        assert_eq!(cmd.command, "hangup");
        p.event(
            Event::Closed {
                id: "a".into(),
                reason: "Connection reset by user".into(),
            },
            43,
        );
        assert!(p.call.is_none());
        let r = &p.history[0];
        assert!(r.answered && !r.outgoing);
        assert_eq!((r.at, r.seconds), (10, 30));
    }

    #[test]
    fn a_dialled_call_goes_ringing_connected_and_takes_baresip_s_id() {
        let mut p = registered();
        let cmd = p
            .request(
                Request::Dial {
                    number: "2001".into(),
                },
                5,
            )
            .unwrap();
        assert_eq!((cmd.command, cmd.params.as_str()), ("dial", "2001"));
        assert_eq!(p.call.as_ref().unwrap().state, CallState::Dialing);
        // Someone else's call id is not ours once ours has one.
        p.event(
            Event::Ringing {
                id: "x".into(),
                peer: peer("2001"),
            },
            6,
        );
        p.event(
            Event::Established {
                id: "y".into(),
                peer: peer("9"),
            },
            7,
        );
        assert_eq!(p.call.as_ref().unwrap().state, CallState::Ringing);
        p.event(
            Event::Established {
                id: "x".into(),
                peer: peer("2001"),
            },
            8,
        );
        p.event(
            Event::Ringing {
                id: "x".into(),
                peer: peer("2001"),
            },
            9,
        );
        assert_eq!(p.call.as_ref().unwrap().state, CallState::Connected);
        p.event(
            Event::Closed {
                id: "x".into(),
                reason: "bye".into(),
            },
            20,
        );
        assert_eq!(p.history[0].seconds, 12);
        assert!(p.history[0].outgoing);
    }

    #[test]
    fn a_busy_number_ends_the_call_unanswered_with_the_pbx_s_reason() {
        let mut p = registered();
        p.request(
            Request::Dial {
                number: "2002".into(),
            },
            5,
        )
        .unwrap();
        p.event(
            Event::Closed {
                id: "z".into(),
                reason: "486 Busy Here".into(),
            },
            6,
        );
        assert!(p.call.is_none());
        assert_eq!(p.history[0].reason, "486 Busy Here");
        assert!(!p.history[0].answered);
    }

    #[test]
    fn requests_that_do_not_fit_the_state_are_refused_without_a_command() {
        let mut p = Phone::default();
        let dial = |n: &str| Request::Dial { number: n.into() };
        assert_eq!(p.request(dial("2000"), 0), Err(Refusal::NotRegistered));
        let mut p2 = registered();
        for bad in [
            "",
            "+",
            "20a0",
            "2000 ",
            "++1",
            &"1".repeat(33),
            "sip:2000@x",
            "1+2",
        ] {
            assert_eq!(p2.request(dial(bad), 0), Err(Refusal::Number), "{bad:?}");
        }
        for r in [
            Request::Answer {},
            Request::Reject {},
            Request::Hangup {},
            Request::Mute { on: true },
        ] {
            assert_eq!(p.request(r.clone(), 0), Err(Refusal::NoCall), "{r:?}");
        }
        p2.request(dial("+49301234*#"), 0).unwrap();
        assert_eq!(p2.request(dial("2000"), 0), Err(Refusal::Busy));
        // Not connected yet: no mute, hold or keypad.
        assert_eq!(
            p2.request(Request::Mute { on: true }, 0),
            Err(Refusal::NoCall)
        );
        assert_eq!(
            p2.request(Request::Dtmf { digit: '5' }, 0),
            Err(Refusal::NoCall)
        );
        assert_eq!(p2.request(Request::Answer {}, 0), Err(Refusal::NoCall));
        assert_eq!(
            p2.request(Request::Dtmf { digit: 'x' }, 0),
            Err(Refusal::Digit)
        );
        assert!(p.pending.is_empty());
    }

    #[test]
    fn mute_and_hold_switch_once_and_are_taken_back_when_baresip_refuses() {
        let mut p = registered();
        p.event(
            Event::Incoming {
                id: "a".into(),
                peer: peer("2000"),
            },
            0,
        );
        p.request(Request::Answer {}, 0).unwrap();
        p.event(
            Event::Established {
                id: "a".into(),
                peer: peer("2000"),
            },
            1,
        );
        let m = p.request(Request::Mute { on: true }, 2).unwrap();
        assert_eq!(m.command, "mute");
        assert!(p.call.as_ref().unwrap().muted);
        // Already muted: nothing to switch.
        assert_eq!(
            p.request(Request::Mute { on: true }, 2),
            Err(Refusal::NoCall)
        );
        p.response(&m.token, true, "call muted");
        let h = p.request(Request::Hold { on: true }, 3).unwrap();
        assert_eq!(h.command, "hold");
        p.response(&h.token, false, "no call\n");
        assert!(!p.call.as_ref().unwrap().held);
        assert_eq!(p.notice.as_ref().unwrap().1, "The phone refused: no call");
        let r = p.request(Request::Hold { on: true }, 4).unwrap();
        p.response(&r.token, true, "");
        assert_eq!(
            p.request(Request::Hold { on: false }, 5).unwrap().command,
            "resume"
        );
        let d = p.request(Request::Dtmf { digit: '#' }, 6).unwrap();
        assert_eq!((d.command, d.params.as_str()), ("sndcode", "#"));
        assert_eq!(p.call.as_ref().unwrap().dtmf, "#");
    }

    #[test]
    fn a_second_caller_during_a_call_is_listed_as_missed() {
        let mut p = registered();
        p.event(
            Event::Incoming {
                id: "a".into(),
                peer: peer("2000"),
            },
            0,
        );
        p.event(
            Event::Incoming {
                id: "b".into(),
                peer: peer("3000"),
            },
            1,
        );
        assert_eq!(p.call.as_ref().unwrap().number, "2000");
        p.event(
            Event::Closed {
                id: "b".into(),
                reason: "cancelled".into(),
            },
            2,
        );
        assert_eq!(p.history[0].number, "3000");
        assert!(!p.history[0].answered);
        assert_eq!(p.call.as_ref().unwrap().number, "2000");
    }

    #[test]
    fn the_list_keeps_the_newest_calls_only() {
        let mut p = registered();
        for i in 0..(HISTORY as u64 + 10) {
            p.event(
                Event::Incoming {
                    id: i.to_string(),
                    peer: peer(&i.to_string()),
                },
                i,
            );
            p.event(
                Event::Closed {
                    id: i.to_string(),
                    reason: String::new(),
                },
                i,
            );
        }
        assert_eq!(p.history.len(), HISTORY);
        assert_eq!(p.history[0].number, (HISTORY + 9).to_string());
    }

    #[test]
    fn the_page_s_requests_are_read_strictly() {
        let ok: Request = serde_json::from_str(r#"{"do":"dial","number":"2000"}"#).unwrap();
        assert_eq!(
            ok,
            Request::Dial {
                number: "2000".into()
            }
        );
        let a: Request = serde_json::from_str(r#"{"do":"answer"}"#).unwrap();
        assert_eq!(a, Request::Answer {});
        let d: Request = serde_json::from_str(r##"{"do":"dtmf","digit":"#"}"##).unwrap();
        assert_eq!(d, Request::Dtmf { digit: '#' });
        let o: Request = serde_json::from_str(r#"{"do":"output","id":45}"#).unwrap();
        assert_eq!(o, Request::Output { id: 45 });
        let v: Request = serde_json::from_str(r#"{"do":"volume","percent":70}"#).unwrap();
        assert_eq!(v, Request::Volume { percent: 70 });
        for bad in [
            r#"{"do":"output","id":-1}"#,
            r#"{"do":"output","id":"45"}"#,
            r#"{"do":"volume","percent":300}"#,
            r#"{"do":"dial"}"#,
            r#"{"do":"answer","x":1}"#,
            r#"{"do":"reboot"}"#,
            r#"{"do":"mute","on":"yes"}"#,
            r#"{"do":"dtmf","digit":"12"}"#,
        ] {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }
    }
}
