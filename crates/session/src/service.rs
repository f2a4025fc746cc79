//! The phone service: one thread owns the [`Phone`]; baresip's control connection, the kiosk
//! page's requests and the session's steps arrive as [`Input`]s; each change is pushed to the
//! page. The connection to baresip is made again whenever baresip restarts.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::api::{Api, PageRequest};
use crate::ctrl::{self, Decoder, Message};
use crate::phone::{Phone, Request, View};
use crate::sound::{self, SoundView};

/// The token of the registration query sent on each new control connection (the phone's own
/// tokens are numbers).
const REGINFO: &str = "reginfo";

/// What moves the phone service.
#[derive(Debug)]
pub enum Input {
    /// Connected to baresip's control interface: the stream to write commands to.
    CtrlUp(TcpStream),
    Ctrl(Message),
    /// The control connection ended (baresip stopped or sent what is not its protocol).
    CtrlGone(String),
    Page(PageRequest),
    /// The PC's sound cards as they are now (read every few seconds).
    Sound(sound::Devices),
    /// The session's step, and the last thing it could not do (German, English).
    Session {
        state: String,
        message: Option<(String, String)>,
    },
}

/// What the page shows besides the phone.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub customer: String,
    pub hotline: Option<String>,
    pub languages: Vec<String>,
    pub secure_boot_off: bool,
    pub own_number: Option<String>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Start the page's server, the connection to baresip at `ctrl_addr` and the service; the
/// session sends its steps on the returned sender.
pub fn spawn(ctx: Context, ctrl_addr: String) -> std::io::Result<Sender<Input>> {
    let (tx, rx) = channel::<Input>();
    let (ptx, prx) = channel::<PageRequest>();
    let api = Api::start(ptx)?;
    let fwd = tx.clone();
    std::thread::spawn(move || {
        for r in prx {
            if fwd.send(Input::Page(r)).is_err() {
                return;
            }
        }
    });
    let conn = tx.clone();
    std::thread::spawn(move || connect_loop(&ctrl_addr, &conn));
    let poll = tx.clone();
    std::thread::spawn(move || sound_loop(&poll));
    std::thread::spawn(move || run(ctx, api, rx));
    Ok(tx)
}

/// Connect to baresip, read its frames, connect again after it goes (once a second).
fn connect_loop(addr: &str, tx: &Sender<Input>) {
    loop {
        if let Ok(s) = TcpStream::connect(addr) {
            let Ok(w) = s.try_clone() else { continue };
            if tx.send(Input::CtrlUp(w)).is_err() {
                return;
            }
            let why = read_frames(s, tx);
            if tx.send(Input::CtrlGone(why)).is_err() {
                return;
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Read the sound cards every [`sound::POLL`]; a change goes to the service.
fn sound_loop(tx: &Sender<Input>) {
    let mut last = None;
    let mut said = String::new();
    loop {
        match sound::read_cards(std::path::Path::new(sound::ASOUND)) {
            Ok(d) if last.as_ref() != Some(&d) => {
                last = Some(d.clone());
                if tx.send(Input::Sound(d)).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            // Once per kind of failure into the journal; the page keeps the last devices.
            Err(e) if e.to_string() != said => {
                said = e.to_string();
                eprintln!("homestick-session: sound: {said}");
            }
            Err(_) => {}
        }
        std::thread::sleep(sound::POLL);
    }
}

/// Frames from baresip until the connection ends; why it ended.
fn read_frames(mut s: TcpStream, tx: &Sender<Input>) -> String {
    let mut d = Decoder::default();
    let mut buf = [0u8; 4096];
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) => return "baresip closed its control connection".into(),
            Ok(n) => n,
            Err(e) => return format!("baresip's control connection: {e}"),
        };
        d.push(&buf[..n]);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => match ctrl::parse(&f) {
                    Ok(m) => {
                        if tx.send(Input::Ctrl(m)).is_err() {
                            return String::new();
                        }
                    }
                    Err(e) => return format!("baresip sent what is not its JSON: {e}"),
                },
                Ok(None) => break,
                Err(e) => return format!("baresip's control connection: {e}"),
            }
        }
    }
}

/// The service's state.
#[derive(Debug)]
struct Service {
    ctx: Context,
    phone: Phone,
    ctrl: Option<TcpStream>,
    session: String,
    message: Option<(String, String)>,
    sound: Option<SoundView>,
    /// The cards picked on the page (card ids), and the ones baresip was told to use.
    chosen: (Option<String>, Option<String>),
    applied: (Option<String>, Option<String>),
}

impl Service {
    fn view(&self) -> String {
        let v = View {
            customer: &self.ctx.customer,
            hotline: self.ctx.hotline.as_deref(),
            languages: &self.ctx.languages,
            session: &self.session,
            message: self.message.as_ref(),
            secure_boot_off: self.ctx.secure_boot_off,
            own_number: self.ctx.own_number.as_deref(),
            registration: &self.phone.registration,
            call: self.phone.call.as_ref(),
            history: &self.phone.history,
            notice: self.phone.notice.as_ref(),
            sound: self.sound.as_ref(),
            now: now(),
        };
        // Strings, numbers and booleans: serializing cannot fail.
        serde_json::to_string(&v).unwrap_or_default()
    }

    fn input(&mut self, i: Input) {
        match i {
            Input::CtrlUp(s) => {
                self.ctrl = Some(s);
                // A new baresip starts with its configuration's device: tell it again.
                self.applied = (None, None);
                self.apply_sound();
                // baresip may have registered before this connection: ask.
                self.send(&ctrl::Command {
                    command: "reginfo",
                    params: String::new(),
                    token: REGINFO.into(),
                });
            }
            Input::Ctrl(Message::Response { data, token, .. }) if token == REGINFO => {
                eprintln!("homestick-session: phone: reginfo {data:?}");
                if let Some(e) = ctrl::reginfo(&data) {
                    self.phone.event(e, now());
                }
            }
            Input::Ctrl(Message::Event(e)) => self.phone.event(e, now()),
            Input::Ctrl(Message::Response { ok, data, token }) => {
                self.phone.response(&token, ok, &data)
            }
            Input::Ctrl(Message::Other) => {}
            Input::CtrlGone(why) => self.ctrl_gone(why),
            Input::Page((r, answer)) => {
                // The page's request went away (its connection closed): nothing to tell.
                let _ = answer.send(self.page(r));
            }
            Input::Sound(d) => {
                let volume = self.sound.as_ref().and_then(|v| v.volume);
                self.sound = Some(SoundView { devices: d, volume });
                self.apply_sound();
            }
            Input::Session { state, message } => {
                self.session = state;
                self.message = message;
            }
        }
    }

    /// baresip went away: its call with it.
    fn ctrl_gone(&mut self, why: String) {
        self.ctrl = None;
        self.phone.registration = crate::phone::Registration::Starting;
        if let Some(c) = self.phone.call.clone() {
            let id = c.id.clone();
            self.phone
                .event(ctrl::Event::Closed { id, reason: why }, now());
            // A dialled call without an id yet is not "current" for an empty id: drop it.
            self.phone.call = None;
        }
    }

    /// Write a command to baresip; false when there is no connection or it broke.
    fn send(&mut self, cmd: &ctrl::Command) -> bool {
        match self.ctrl.as_mut() {
            Some(s) => s.write_all(&cmd.encode()).and_then(|_| s.flush()).is_ok(),
            None => false,
        }
    }

    fn page(&mut self, r: Request) -> Result<(), (String, String)> {
        if matches!(
            r,
            Request::Output { .. } | Request::Input { .. } | Request::Volume { .. }
        ) {
            return self.sound_request(&r).map_err(|e| {
                eprintln!("homestick-session: sound: {e}");
                let (de, en) = crate::phone::Refusal::Sound.words();
                (de.to_string(), en.to_string())
            });
        }
        let cmd = self.phone.request(r, now()).map_err(|e| {
            let (de, en) = e.words();
            (de.to_string(), en.to_string())
        })?;
        if self.send(&cmd) {
            return Ok(());
        }
        self.phone.response(&cmd.token, false, "not running");
        Err((
            "Das Telefon läuft gerade nicht; es startet neu.".into(),
            "The phone is not running just now; it is restarting.".into(),
        ))
    }
}

impl Service {
    /// A device chosen or the volume set on the page: only a device the page was shown.
    fn sound_request(&mut self, r: &Request) -> Result<(), sound::SoundError> {
        let Some(v) = self.sound.as_ref() else {
            return Err(sound::SoundError::NotRunning);
        };
        let name = |list: &[sound::Device], id: u32| {
            let d = list.iter().find(|d| d.id == id);
            d.map(|d| d.name.clone())
                .ok_or_else(|| sound::SoundError::Unknown(format!("{r:?}")))
        };
        match *r {
            Request::Output { id } => self.chosen.0 = Some(name(&v.devices.outputs, id)?),
            Request::Input { id } => self.chosen.1 = Some(name(&v.devices.inputs, id)?),
            Request::Volume { percent } if percent <= 100 => {
                let card = self.output_card().ok_or(sound::SoundError::NotRunning)?;
                sound::set_volume(card, percent)?;
                let now = sound::volume(card);
                if let Some(v) = self.sound.as_mut() {
                    v.volume = now;
                }
            }
            _ => return Err(sound::SoundError::Unknown(format!("{r:?}"))),
        }
        self.apply_sound();
        Ok(())
    }

    /// The card number of the output in use.
    fn output_card(&self) -> Option<u32> {
        let v = self.sound.as_ref()?;
        let name = v.devices.output.as_deref()?;
        v.devices
            .outputs
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.id)
    }

    /// The devices the phone uses, from the choice and the cards there are; baresip is told
    /// when they change (for the next calls and the call going on), and the output's volume read.
    fn apply_sound(&mut self) {
        let Some(v) = self.sound.as_mut() else {
            return;
        };
        let output = sound::pick(&v.devices.outputs, self.chosen.0.as_deref()).cloned();
        let input = sound::pick(&v.devices.inputs, self.chosen.1.as_deref()).cloned();
        v.devices.output = output.as_ref().map(|d| d.name.clone());
        v.devices.input = input.as_ref().map(|d| d.name.clone());
        let now = (v.devices.output.clone(), v.devices.input.clone());
        if self.ctrl.is_none() || now == self.applied {
            return;
        }
        let was = self.applied.clone();
        for (command, device, was) in [("auplay", &output, &was.0), ("ausrc", &input, &was.1)] {
            let Some(d) = device.as_ref().filter(|d| Some(&d.name) != was.as_ref()) else {
                continue;
            };
            eprintln!(
                "homestick-session: sound: {command} on {} ({})",
                d.name, d.label
            );
            let cmd = ctrl::Command {
                command,
                params: format!("alsa,{}", d.pcm()),
                token: "sound".into(),
            };
            self.send(&cmd);
        }
        let volume = output.and_then(|d| sound::volume(d.id));
        if let Some(v) = self.sound.as_mut() {
            v.volume = volume;
        }
        self.applied = now;
    }
}

fn run(ctx: Context, api: Api, rx: Receiver<Input>) {
    let mut s = Service {
        ctx,
        phone: Phone::default(),
        ctrl: None,
        session: "network".into(),
        message: None,
        sound: None,
        chosen: (None, None),
        applied: (None, None),
    };
    api.publish(s.view());
    // A call's time is counted on the page; the view is pushed on every change only.
    for i in rx {
        s.input(i);
        api.publish(s.view());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::{CallState, Request};

    fn service() -> Service {
        Service {
            ctx: Context::default(),
            phone: Phone::default(),
            ctrl: None,
            session: "network".into(),
            message: None,
            sound: None,
            chosen: (None, None),
            applied: (None, None),
        }
    }

    /// A loopback pair: the service's end and baresip's.
    fn pair() -> (TcpStream, TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    fn ask(s: &mut Service, r: Request) -> Result<(), (String, String)> {
        let (tx, rx) = channel();
        s.input(Input::Page((r, tx)));
        rx.recv().unwrap()
    }

    #[test]
    fn a_page_request_becomes_a_command_on_the_control_connection() {
        let mut s = service();
        let (mine, mut baresip) = pair();
        s.input(Input::CtrlUp(mine));
        s.input(Input::Ctrl(Message::Event(ctrl::Event::Registered)));
        ask(
            &mut s,
            Request::Dial {
                number: "2000".into(),
            },
        )
        .unwrap();
        baresip
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut d = Decoder::default();
        let mut buf = [0u8; 512];
        let mut frames = vec![];
        while frames.len() < 2 {
            let n = baresip.read(&mut buf).unwrap();
            d.push(&buf[..n]);
            while let Some(f) = d.next_frame().unwrap() {
                frames.push(serde_json::from_slice::<serde_json::Value>(&f).unwrap());
            }
        }
        // First the registration query every new connection makes, then the page's command.
        assert_eq!(frames[0]["command"], "reginfo");
        let v = &frames[1];
        assert_eq!(
            (v["command"].as_str(), v["params"].as_str()),
            (Some("dial"), Some("2000"))
        );
        let view: serde_json::Value = serde_json::from_str(&s.view()).unwrap();
        assert_eq!(view["call"]["state"], "dialing");
        assert_eq!(view["registration"]["state"], "registered");
    }

    #[test]
    fn without_baresip_a_request_is_refused_and_leaves_no_call() {
        let mut s = service();
        s.phone.event(ctrl::Event::Registered, 0);
        let e = ask(
            &mut s,
            Request::Dial {
                number: "2000".into(),
            },
        )
        .unwrap_err();
        assert!(e.1.contains("not running"), "{e:?}");
        assert!(s.phone.call.is_none());
        let e = ask(&mut s, Request::Answer {}).unwrap_err();
        assert_eq!(e.1, "No call for this.");
    }

    #[test]
    fn when_baresip_goes_its_call_ends_in_the_list_and_the_phone_is_not_registered() {
        let mut s = service();
        s.phone.event(ctrl::Event::Registered, 0);
        let peer = ctrl::Peer {
            number: "2000".into(),
            name: None,
        };
        s.phone.event(
            ctrl::Event::Incoming {
                id: "a".into(),
                peer,
            },
            1,
        );
        assert_eq!(s.phone.call.as_ref().unwrap().state, CallState::Incoming);
        s.input(Input::CtrlGone(
            "baresip closed its control connection".into(),
        ));
        assert!(s.phone.call.is_none());
        assert_eq!(
            s.phone.history[0].reason,
            "baresip closed its control connection"
        );
        let view: serde_json::Value = serde_json::from_str(&s.view()).unwrap();
        assert_eq!(view["registration"]["state"], "starting");
    }

    /// The next `n` commands the service wrote to baresip, as (command, params).
    fn commands(baresip: &mut TcpStream, n: usize) -> Vec<(String, String)> {
        baresip
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let (mut d, mut buf, mut out) = (Decoder::default(), [0u8; 512], vec![]);
        while out.len() < n {
            let got = baresip.read(&mut buf).unwrap();
            d.push(&buf[..got]);
            while let Some(f) = d.next_frame().unwrap() {
                let v: serde_json::Value = serde_json::from_slice(&f).unwrap();
                let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
                out.push((text("command"), text("params")));
            }
        }
        out
    }

    fn card(id: u32, name: &str, usb: bool) -> sound::Device {
        sound::Device {
            id,
            name: name.into(),
            label: format!("{name} audio"),
            usb,
        }
    }

    fn cards(outputs: Vec<sound::Device>, inputs: Vec<sound::Device>) -> Input {
        Input::Sound(sound::Devices {
            outputs,
            inputs,
            ..Default::default()
        })
    }

    #[test]
    fn baresip_is_told_the_headset_when_it_comes_and_the_pc_s_card_when_it_goes() {
        let mut s = service();
        // No sound card read yet: the page's choice is refused.
        let e = ask(&mut s, Request::Output { id: 0 }).unwrap_err();
        assert!(e.1.contains("sound"), "{e:?}");
        let (mine, mut baresip) = pair();
        s.input(Input::CtrlUp(mine));
        assert_eq!(commands(&mut baresip, 1)[0].0, "reginfo");
        let pc = || card(0, "Intel", false);
        s.input(cards(vec![pc()], vec![pc()]));
        let want = |c: &str, p: &str| (c.to_string(), format!("alsa,default:CARD={p}"));
        assert_eq!(
            commands(&mut baresip, 2),
            [want("auplay", "Intel"), want("ausrc", "Intel")]
        );
        // A headset (playback only) plugged in: the output moves, the input stays.
        s.input(cards(vec![pc(), card(1, "Audio", true)], vec![pc()]));
        assert_eq!(commands(&mut baresip, 1), [want("auplay", "Audio")]);
        let view: serde_json::Value = serde_json::from_str(&s.view()).unwrap();
        assert_eq!(view["sound"]["output"], "Audio");
        assert_eq!(view["sound"]["outputs"][1]["label"], "Audio audio");
        // Chosen on the page: the PC's card, though the headset is there.
        ask(&mut s, Request::Output { id: 0 }).unwrap();
        assert_eq!(commands(&mut baresip, 1), [want("auplay", "Intel")]);
        // Pulled and plugged again: the choice holds; nothing to tell baresip.
        s.input(cards(vec![pc()], vec![pc()]));
        s.input(cards(vec![pc(), card(2, "Audio", true)], vec![pc()]));
        for r in [
            Request::Output { id: 99 },
            Request::Input { id: 2 },
            Request::Volume { percent: 101 },
        ] {
            let e = ask(&mut s, r.clone()).unwrap_err();
            assert!(e.1.contains("sound device"), "{r:?}: {e:?}");
        }
        // The next command baresip gets is the headset's, once chosen: none came between.
        ask(&mut s, Request::Output { id: 2 }).unwrap();
        assert_eq!(commands(&mut baresip, 1), [want("auplay", "Audio")]);
        // With the headset gone, the PC's card again.
        s.input(cards(vec![pc()], vec![pc()]));
        assert_eq!(commands(&mut baresip, 1), [want("auplay", "Intel")]);
    }

    #[test]
    fn garbage_from_baresip_ends_the_connection_with_a_reason() {
        let (mine, mut baresip) = pair();
        let (tx, rx) = channel();
        let t = std::thread::spawn(move || read_frames(mine, &tx));
        baresip.write_all(b"7:{\"x\":1}x").unwrap();
        let why = t.join().unwrap();
        assert!(why.contains("does not end with ','"), "{why}");
        assert!(rx.try_recv().is_err());
    }
}
