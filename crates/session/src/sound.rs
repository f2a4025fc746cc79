//! The PC's sound for the phone: ALSA's sound cards, read from `/proc/asound`, and the one
//! the phone uses, chosen by the session and handed to baresip with its own commands
//! (`auplay` and `ausrc`: for the next calls and the call going on).
//!
//! The session chooses: the device picked on the page while it is there, else a USB device
//! (a headset, as a rule; the newest plugged in), else the first card. A headset plugged in
//! during a call takes the call over within [`POLL`]; a pulled one gives it back to the PC's
//! own card, and the call goes on.
//!
//! Why no sound server: with PipeWire (and pipewire-alsa) in the desktop base, baresip 1.0
//! hung opening its playback when a call was answered in QEMU (issue 25's runs; baresip's own
//! tracker knows the hang with PipeWire), and baresip 1.0 has no PipeWire or PulseAudio
//! module. ALSA's `default` device of each card (dmix and dsnoop) lets the ring and a call share
//! it. What a sound server would add, echo cancellation, is not here yet.
//!
//! `/proc/asound/cards` holds names a USB device gives itself: read bounded ([`MAX_CARDS_FILE`]),
//! names shown cut and without control characters, card ids used only when ALSA's own
//! character set.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where the kernel lists the sound cards.
pub const ASOUND: &str = "/proc/asound";
/// How often the cards are read (a headset plugged in or pulled is seen within this).
pub const POLL: Duration = Duration::from_secs(2);
/// The most of `/proc/asound/cards` read (32 cards take under 8 KiB).
pub const MAX_CARDS_FILE: u64 = 64 * 1024;
/// The most cards listed (ALSA has at most 32).
const MAX_CARDS: usize = 32;
/// The longest device name shown on the page.
const MAX_LABEL: usize = 80;
/// How long `amixer` may take.
const TOOL_WAIT: Duration = Duration::from_secs(5);
/// The most output read from `amixer`.
const MAX_OUTPUT: usize = 256 * 1024;
const AMIXER: &str = "/usr/bin/amixer";

/// Why a sound device could not be read or set.
#[derive(Debug, thiserror::Error)]
pub enum SoundError {
    #[error("{ASOUND}: {0}")]
    Cards(#[source] std::io::Error),
    #[error("{0}: {1}")]
    Start(&'static str, #[source] std::io::Error),
    #[error("{0} did not answer within {secs} seconds", secs = TOOL_WAIT.as_secs())]
    Timeout(&'static str),
    #[error("{0} failed: {1}")]
    Tool(&'static str, String),
    #[error("no sound card")]
    NotRunning,
    #[error("{0}: no such device or volume")]
    Unknown(String),
    #[error("card {0}: no volume control")]
    NoControl(u32),
}

/// A sound card as the page lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Device {
    /// ALSA's card number (what the page sends back).
    pub id: u32,
    /// ALSA's card id ("Intel", "Headset"; stable while the device is plugged in).
    pub name: String,
    /// What a person reads: the card's name.
    pub label: String,
    /// A USB device (a headset, as a rule).
    pub usb: bool,
}

impl Device {
    /// The ALSA device baresip opens for this card: its `default`, shared by the ring and a
    /// call (dmix, dsnoop).
    pub fn pcm(&self) -> String {
        format!("default:CARD={}", self.name)
    }
}

/// The PC's outputs and inputs and which of each the phone uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Devices {
    pub outputs: Vec<Device>,
    pub inputs: Vec<Device>,
    /// The card ids of the output and input in use.
    pub output: Option<String>,
    pub input: Option<String>,
}

/// The sound as the page shows it: the devices, which are in use, and the output's volume.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SoundView {
    #[serde(flatten)]
    pub devices: Devices,
    pub volume: Option<u8>,
}

/// One line of `/proc/asound/cards`: number, id, driver, name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub number: u32,
    pub id: String,
    pub driver: String,
    pub name: String,
}

/// The cards in `/proc/asound/cards`: " 0 [Intel          ]: HDA-Intel - HDA Intel", each
/// followed by a line with the long name (skipped). Lines that are not a card are skipped; a
/// card whose id is not ALSA's character set (letters, digits, `_`, `-`) is left out.
pub fn parse_cards(text: &str) -> Vec<Card> {
    let mut cards = Vec::new();
    for line in text.lines() {
        let Some((head, rest)) = line.split_once("]: ") else {
            continue;
        };
        let Some((number, id)) = head.trim_start().split_once(" [") else {
            continue;
        };
        let (Ok(number), id) = (number.trim().parse::<u32>(), id.trim()) else {
            continue;
        };
        let ok_id = !id.is_empty()
            && id.len() <= 32
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok_id || cards.len() == MAX_CARDS {
            continue;
        }
        let (driver, name) = rest.split_once(" - ").unwrap_or((rest, rest));
        cards.push(Card {
            number,
            id: id.to_string(),
            driver: driver.trim().to_string(),
            name: shown(name),
        });
    }
    cards
}

/// A name as the page shows it: no control characters, at most [`MAX_LABEL`] characters.
fn shown(name: &str) -> String {
    name.trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_LABEL)
        .collect()
}

/// The cards under `root` (`/proc/asound`): each with a playback device is an output, each
/// with a capture device an input.
pub fn read_cards(root: &Path) -> Result<Devices, SoundError> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(root.join("cards"))
        .and_then(|f| f.take(MAX_CARDS_FILE).read_to_string(&mut text))
        .map_err(SoundError::Cards)?;
    let mut d = Devices::default();
    for c in parse_cards(&text) {
        let dir = root.join(format!("card{}", c.number));
        let entries: Vec<String> = std::fs::read_dir(&dir)
            .map(|r| {
                r.flatten()
                    .take(256)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            // A card pulled between the two reads has no directory: no devices, left out.
            .unwrap_or_default();
        let has = |end: char| {
            entries
                .iter()
                .any(|e| e.starts_with("pcm") && e.ends_with(end))
        };
        let device = Device {
            id: c.number,
            name: c.id.clone(),
            label: c.name.clone(),
            usb: c.driver == "USB-Audio" || entries.iter().any(|e| e == "usbid"),
        };
        if has('p') {
            d.outputs.push(device.clone());
        }
        if has('c') {
            d.inputs.push(device);
        }
    }
    Ok(d)
}

/// The device the phone uses from `list`: `chosen` (a card id) while it is there, else the
/// newest USB device, else the first.
pub fn pick<'a>(list: &'a [Device], chosen: Option<&str>) -> Option<&'a Device> {
    chosen
        .and_then(|c| list.iter().find(|d| d.name == c))
        .or_else(|| list.iter().filter(|d| d.usb).max_by_key(|d| d.id))
        .or_else(|| list.first())
}

/// The playback volume controls preferred, in this order (the PC's master, then what a USB
/// headset calls its volume); else the first control with a playback volume.
const CONTROLS: &[&str] = &["Master", "PCM", "Speaker", "Headphone", "Headset"];

/// The control whose volume the page sets, from `amixer scontents`: blocks that begin
/// "Simple mixer control 'NAME',0" with a "Capabilities:" line. A name with a quote or a
/// control character is skipped (it is handed to amixer as one argument).
pub fn parse_control(text: &str) -> Option<String> {
    let mut playback = Vec::new();
    let mut name: Option<&str> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Simple mixer control '") {
            name = rest
                .strip_suffix("',0")
                .filter(|n| !n.is_empty() && n.len() <= 64)
                .filter(|n| !n.chars().any(|c| c.is_control() || c == '\''));
        } else if let (Some(n), Some(caps)) = (name, line.trim().strip_prefix("Capabilities:")) {
            if caps
                .split_whitespace()
                .any(|c| c == "pvolume" || c == "volume")
            {
                playback.push(n);
            }
        }
    }
    CONTROLS
        .iter()
        .find(|c| playback.contains(c))
        .copied()
        .or_else(|| playback.first().copied())
        .map(str::to_string)
}

/// The lines of control `name`'s block in `amixer scontents` (empty when it has none).
fn block<'a>(text: &'a str, name: &str) -> &'a str {
    let head = format!("Simple mixer control '{name}',0");
    let Some(start) = text.find(&head) else {
        return "";
    };
    let rest = &text[start + head.len()..];
    &rest[..rest.find("Simple mixer control '").unwrap_or(rest.len())]
}

/// The control of `card` whose volume the page sets, and its volume in percent: one
/// `amixer scontents`.
fn mixer(card: u32) -> Result<(String, Option<u8>), SoundError> {
    let out = tool(AMIXER, &["-M", "-c", &card.to_string(), "scontents"])?;
    let text = String::from_utf8_lossy(&out);
    let control = parse_control(&text).ok_or(SoundError::NoControl(card))?;
    let volume = parse_volume(block(&text, &control));
    Ok((control, volume))
}

/// The playback volume of `card` in percent (none without amixer or a control).
pub fn volume(card: u32) -> Option<u8> {
    if !Path::new(AMIXER).exists() {
        return None;
    }
    mixer(card).ok()?.1
}

/// Set the playback volume of `card` to `percent` (at most 100).
pub fn set_volume(card: u32, percent: u8) -> Result<(), SoundError> {
    let (c, _) = mixer(card)?;
    let p = format!("{}%", percent.min(100));
    tool(
        AMIXER,
        &["-M", "-q", "-c", &card.to_string(), "sset", &c, &p],
    )
    .map(drop)
}

/// The first percentage `amixer sget` prints ("  Front Left: Playback 52 [68%] [on]").
pub fn parse_volume(text: &str) -> Option<u8> {
    text.lines()
        .filter(|l| l.contains("Playback") || l.contains("Mono:"))
        .find_map(|l| {
            let (_, rest) = l.split_once('[')?;
            let (n, _) = rest.split_once("%]")?;
            n.parse::<u8>().ok().filter(|v| *v <= 100)
        })
}

/// Run a tool (amixer): its output, at most [`MAX_OUTPUT`] bytes, within [`TOOL_WAIT`].
fn tool(program: &'static str, args: &[&str]) -> Result<Vec<u8>, SoundError> {
    use std::io::Read;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().map_err(|e| SoundError::Start(program, e))?;
    let out = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(o) = out {
            // A broken pipe ends the reading; what came is what counts.
            let _ = o.take(MAX_OUTPUT as u64 + 1).read_to_end(&mut buf);
        }
        buf
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() < TOOL_WAIT => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                // Stopped here: it may have ended by itself just now (kill fails then), and
                // the wait only reaps it.
                let _ = child.kill();
                // Reaped; its status does not matter after the timeout.
                let _ = child.wait();
                return Err(SoundError::Timeout(program));
            }
        }
    };
    // The reader only reads; had it panicked, no output is what came.
    let buf = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(SoundError::Tool(program, status.to_string()));
    }
    if buf.len() > MAX_OUTPUT {
        return Err(SoundError::Tool(
            program,
            format!("more than {MAX_OUTPUT} bytes"),
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CARDS: &str = " 0 [Intel          ]: HDA-Intel - HDA Intel
                      HDA Intel at 0xfebf0000 irq 29
 1 [Audio          ]: USB-Audio - QEMU USB Audio\u{7} Headset
                      QEMU QEMU USB Audio at usb-0000:00:04.0-1, full speed
 2 [bad,id         ]: USB-Audio - comma
garbage line
 x [Nope           ]: X - Y
";

    #[test]
    fn the_cards_file_gives_each_card_once_with_a_clean_name() {
        let c = parse_cards(CARDS);
        let ids: Vec<_> = c.iter().map(|c| (c.number, c.id.as_str())).collect();
        assert_eq!(ids, [(0, "Intel"), (1, "Audio")]);
        assert_eq!(c[1].driver, "USB-Audio");
        assert_eq!(c[1].name, "QEMU USB Audio Headset");
        let long = format!(" 3 [Long]: D - {}\n", "x".repeat(500));
        assert_eq!(parse_cards(&long)[0].name.len(), MAX_LABEL);
        let many: String = (0..100).map(|i| format!("{i} [c{i}]: D - n\n")).collect();
        assert_eq!(parse_cards(&many).len(), MAX_CARDS);
        assert!(parse_cards("").is_empty());
    }

    #[test]
    fn cards_are_read_with_their_playback_and_capture() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("cards"), CARDS).unwrap();
        for (dir, entries) in [
            ("card0", &["pcm0p", "pcm0c", "codec#0"][..]),
            ("card1", &["pcm0p", "usbid"][..]),
        ] {
            for e in entries {
                std::fs::create_dir_all(d.path().join(dir).join(e)).unwrap();
            }
        }
        let devices = read_cards(d.path()).unwrap();
        let names = |v: &[Device]| v.iter().map(|d| d.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&devices.outputs), ["Intel", "Audio"]);
        assert_eq!(names(&devices.inputs), ["Intel"]);
        assert!(devices.outputs[1].usb && !devices.outputs[0].usb);
        assert_eq!(devices.outputs[1].pcm(), "default:CARD=Audio");
        assert!(read_cards(&d.path().join("none")).is_err());
    }

    #[test]
    fn the_phone_takes_the_chosen_card_then_usb_then_the_first() {
        let dev = |id: u32, name: &str, usb: bool| Device {
            id,
            name: name.into(),
            label: name.into(),
            usb,
        };
        let list = [
            dev(0, "Intel", false),
            dev(1, "Audio", true),
            dev(2, "Set", true),
        ];
        let got = |chosen| pick(&list, chosen).map(|d| d.name.as_str());
        assert_eq!(got(None), Some("Set"));
        assert_eq!(got(Some("Intel")), Some("Intel"));
        // A chosen card that was pulled: the next best.
        assert_eq!(got(Some("Gone")), Some("Set"));
        assert_eq!(pick(&list[..1], Some("Set")).unwrap().name, "Intel");
        assert_eq!(pick(&[], None), None);
    }

    #[test]
    fn the_volume_control_is_the_master_or_the_first_playback_volume() {
        let usb = "Simple mixer control 'Audio Output Volume Control',0\n  Capabilities: pvolume pswitch pswitch-joined\n  Playback channels: Front Left - Front Right\n";
        assert_eq!(
            parse_control(usb).as_deref(),
            Some("Audio Output Volume Control")
        );
        let hda = format!("Simple mixer control 'Capture',0\n  Capabilities: cvolume cswitch\n  Front Left: Capture 74 [100%] [on]\n{usb}  Front Left: Playback 240 [94%] [on]\nSimple mixer control 'Master',0\n  Capabilities: pvolume pswitch\n  Front Left: Playback 54 [73%] [on]\n");
        assert_eq!(parse_control(&hda).as_deref(), Some("Master"));
        // The volume is the chosen control's, from the same listing.
        assert_eq!(parse_volume(block(&hda, "Master")), Some(73));
        assert_eq!(
            parse_volume(block(&hda, "Audio Output Volume Control")),
            Some(94)
        );
        assert_eq!(block(&hda, "Gone"), "");
        let capture_only = "Simple mixer control 'Capture',0\n  Capabilities: cvolume\n";
        assert_eq!(parse_control(capture_only), None);
        let quoted = "Simple mixer control 'a'b',0\n  Capabilities: pvolume\n";
        assert_eq!(parse_control(quoted), None);
        assert_eq!(parse_control(""), None);
    }

    #[test]
    fn volumes_are_read_in_percent() {
        let hda = "Simple mixer control 'Master',0\n  Capabilities: pvolume\n  Playback channels: Front Left - Front Right\n  Limits: Playback 0 - 127\n  Front Left: Playback 87 [68%] [on]\n  Front Right: Playback 87 [68%] [on]\n";
        assert_eq!(parse_volume(hda), Some(68));
        assert_eq!(
            parse_volume("  Mono: Playback 31 [100%] [0.00dB] [on]"),
            Some(100)
        );
        for bad in ["", "Playback [x%]", "Playback [300%]", "Capture 5 [40%]"] {
            assert_eq!(parse_volume(bad), None, "{bad}");
        }
    }
}
