//! The PC's sound for the phone: PipeWire with WirePlumber, started by the session as the
//! session's user before baresip, when the base has them (the desktop base).
//!
//! Why PipeWire: a USB headset plugged in before or during a session becomes a device without
//! anyone choosing it, a pulled one takes its streams to the next device and the call goes on,
//! and baresip needs nothing but ALSA's `default` (pipewire-alsa routes it). baresip on a
//! sound card directly keeps the card it opened: a headset pulled mid-call ends the sound.
//!
//! The servers run in their own runtime directory ([`SOUND_DIR`]) without a login session,
//! with a D-Bus session bus of their own there (WirePlumber and PipeWire's modules want one);
//! they are children of the session, so systemd stops them with it.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The sound servers' runtime directory (`XDG_RUNTIME_DIR` of them and of baresip).
pub const SOUND_DIR: &str = "/run/homestick-session/sound";
const PIPEWIRE: &str = "/usr/bin/pipewire";
const WIREPLUMBER: &str = "/usr/bin/wireplumber";
const DBUS_DAEMON: &str = "/usr/bin/dbus-daemon";
/// How long PipeWire may take to open its socket (a slow stick on a slow PC).
const SOCKET_WAIT: Duration = Duration::from_secs(15);

/// Why the sound servers did not start.
#[derive(Debug, thiserror::Error)]
pub enum SoundError {
    #[error("{SOUND_DIR}: {0}")]
    Dir(#[source] std::io::Error),
    #[error("{0}: {1}")]
    Start(&'static str, #[source] std::io::Error),
    #[error("PipeWire or its bus opened no socket within {} seconds", SOCKET_WAIT.as_secs())]
    NoSocket,
    #[error("{0} did not answer within {secs} seconds", secs = TOOL_WAIT.as_secs())]
    Timeout(&'static str),
    #[error("{0} failed: {1}")]
    Tool(&'static str, String),
    #[error("pw-dump: {0}")]
    Dump(#[source] serde_json::Error),
    #[error("no sound server runs")]
    NotRunning,
    #[error("{0}: no such device or volume")]
    Unknown(String),
}

/// How long `pw-dump` or `wpctl` may take.
const TOOL_WAIT: Duration = Duration::from_secs(5);

/// The sound as the page shows it: the devices, which are in use, and the output's volume.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SoundView {
    #[serde(flatten)]
    pub devices: Devices,
    pub volume: Option<u8>,
}

/// Whether the servers run (PipeWire's socket is there).
pub fn running() -> bool {
    Path::new(SOUND_DIR).join("pipewire-0").exists()
}

/// The devices and the volume, from the running servers.
pub fn read() -> Result<SoundView, SoundError> {
    let dump = tool("pw-dump", &[])?;
    let devices = parse_dump(&dump).map_err(SoundError::Dump)?;
    let text = tool("wpctl", &["get-volume", "@DEFAULT_AUDIO_SINK@"])?;
    Ok(SoundView {
        devices,
        volume: parse_volume(&String::from_utf8_lossy(&text)),
    })
}

/// Make device `id` (an output or an input) the one calls and the ring use; the streams move.
pub fn set_default(id: u32) -> Result<(), SoundError> {
    tool("wpctl", &["set-default", &id.to_string()]).map(drop)
}

/// The output's volume, `percent` of full (at most 100).
pub fn set_volume(percent: u8) -> Result<(), SoundError> {
    let p = format!("{}%", percent.min(100));
    tool("wpctl", &["set-volume", "@DEFAULT_AUDIO_SINK@", &p]).map(drop)
}

/// Run a PipeWire tool against the session's server: its output, at most [`MAX_DUMP`] bytes,
/// within [`TOOL_WAIT`].
fn tool(program: &'static str, args: &[&str]) -> Result<Vec<u8>, SoundError> {
    use std::io::Read;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    user_env(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| SoundError::Start(program, e))?;
    let out = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(o) = out {
            // A broken pipe ends the reading; what came is what counts.
            let _ = o.take(MAX_DUMP as u64 + 1).read_to_end(&mut buf);
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
    if buf.len() > MAX_DUMP {
        return Err(SoundError::Tool(
            program,
            format!("more than {MAX_DUMP} bytes"),
        ));
    }
    Ok(buf)
}

/// The running servers; dropping it stops them.
#[derive(Debug)]
pub struct Sound {
    children: Vec<Child>,
}

impl Drop for Sound {
    fn drop(&mut self) {
        for c in &mut self.children {
            // Already gone: nothing to stop.
            let _ = c.kill();
            // Reaped; how it ended does not matter when the session ends.
            let _ = c.wait();
        }
    }
}

/// Whether the base has PipeWire and WirePlumber (the headless base has neither).
pub fn installed() -> bool {
    Path::new(PIPEWIRE).exists() && Path::new(WIREPLUMBER).exists()
}

/// The environment a program of the user needs to reach the sound server (and its bus).
pub fn user_env(cmd: &mut Command) {
    cmd.env("XDG_RUNTIME_DIR", SOUND_DIR).env(
        "DBUS_SESSION_BUS_ADDRESS",
        format!("unix:path={SOUND_DIR}/bus"),
    );
}

/// Start PipeWire, wait for its socket, then WirePlumber (which finds the devices), as user
/// `uid` in group `gid` (the group that owns /dev/snd).
pub fn start(uid: u32, gid: u32, home: &Path) -> Result<Sound, SoundError> {
    // A stale directory of an earlier run of the session: its socket is dead.
    if Path::new(SOUND_DIR).exists() {
        std::fs::remove_dir_all(SOUND_DIR).map_err(SoundError::Dir)?;
    }
    std::fs::create_dir_all(SOUND_DIR).map_err(SoundError::Dir)?;
    std::os::unix::fs::chown(SOUND_DIR, Some(uid), Some(gid)).map_err(SoundError::Dir)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(SOUND_DIR, std::fs::Permissions::from_mode(0o700))
            .map_err(SoundError::Dir)?;
    }
    let server = |program: &'static str, args: &[&str]| {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("HOME", home)
            .env("PATH", "/usr/bin:/bin")
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .uid(uid)
            .gid(gid);
        user_env(&mut cmd);
        cmd.spawn().map_err(|e| SoundError::Start(program, e))
    };
    let mut sound = Sound { children: vec![] };
    if Path::new(DBUS_DAEMON).exists() {
        let address = format!("--address=unix:path={SOUND_DIR}/bus");
        sound
            .children
            .push(server(DBUS_DAEMON, &["--session", "--nofork", &address])?);
        wait_for(&Path::new(SOUND_DIR).join("bus"))?;
    }
    sound.children.push(server(PIPEWIRE, &[])?);
    wait_for(&Path::new(SOUND_DIR).join("pipewire-0"))?;
    sound.children.push(server(WIREPLUMBER, &[])?);
    Ok(sound)
}

/// Wait until a server's socket is there (at most [`SOCKET_WAIT`]).
fn wait_for(socket: &Path) -> Result<(), SoundError> {
    let start = Instant::now();
    while !socket.exists() {
        if start.elapsed() > SOCKET_WAIT {
            return Err(SoundError::NoSocket);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The largest `pw-dump` the session reads (a PC with many devices stays far below).
pub const MAX_DUMP: usize = 1 << 20;
/// The longest device name shown on the page.
const MAX_LABEL: usize = 80;

/// A sound device as the page lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Device {
    /// PipeWire's object id (what `wpctl set-default` takes).
    pub id: u32,
    /// The node's name (stable while the device is plugged in).
    pub name: String,
    /// What a person reads: the device's description.
    pub label: String,
    /// A USB device (a headset, as a rule).
    pub usb: bool,
}

/// The PC's outputs and inputs and which of each is in use.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Devices {
    pub outputs: Vec<Device>,
    pub inputs: Vec<Device>,
    /// The node names of the default output and input.
    pub output: Option<String>,
    pub input: Option<String>,
}

/// The devices in a `pw-dump` (JSON array of PipeWire objects): audio sinks and sources of
/// sound cards (not the monitors or virtual nodes), and the defaults from the "default"
/// metadata. Anything else in the dump is ignored; a dump that is no JSON array is an error.
pub fn parse_dump(json: &[u8]) -> Result<Devices, serde_json::Error> {
    let objects: Vec<serde_json::Value> = serde_json::from_slice(json)?;
    let mut d = Devices::default();
    for o in &objects {
        match o.get("type").and_then(|t| t.as_str()) {
            Some("PipeWire:Interface:Node") => node(o, &mut d),
            Some("PipeWire:Interface:Metadata") => defaults(o, &mut d),
            _ => {}
        }
    }
    Ok(d)
}

fn node(o: &serde_json::Value, d: &mut Devices) {
    let props = &o["info"]["props"];
    let text = |k: &str| props.get(k).and_then(|v| v.as_str());
    let (Some(id), Some(class), Some(name)) = (
        o.get("id")
            .and_then(|i| i.as_u64())
            .and_then(|i| u32::try_from(i).ok()),
        text("media.class"),
        text("node.name"),
    ) else {
        return;
    };
    // Only the cards' own nodes: ALSA devices (virtual sinks and streams are not devices).
    if !name.starts_with("alsa_") {
        return;
    }
    let label: String = text("node.description")
        .unwrap_or(name)
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_LABEL)
        .collect();
    let device = Device {
        id,
        name: name.to_string(),
        label,
        usb: name.starts_with("alsa_output.usb-") || name.starts_with("alsa_input.usb-"),
    };
    match class {
        "Audio/Sink" => d.outputs.push(device),
        "Audio/Source" => d.inputs.push(device),
        _ => {}
    }
}

fn defaults(o: &serde_json::Value, d: &mut Devices) {
    if o["props"]["metadata.name"].as_str() != Some("default") {
        return;
    }
    for m in o["metadata"].as_array().into_iter().flatten() {
        let name = m["value"]["name"].as_str().map(str::to_string);
        match m["key"].as_str() {
            Some("default.audio.sink") => d.output = name,
            Some("default.audio.source") => d.input = name,
            _ => {}
        }
    }
}

/// The volume `wpctl get-volume` prints ("Volume: 0.40", "Volume: 0.40 [MUTED]"), in percent.
pub fn parse_volume(text: &str) -> Option<u8> {
    let v: f64 = text
        .trim()
        .strip_prefix("Volume:")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    (v.is_finite() && v >= 0.0).then(|| (v * 100.0).round().min(150.0) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = r#"[
      {"id": 0, "type": "PipeWire:Interface:Core", "info": {}},
      {"id": 45, "type": "PipeWire:Interface:Node", "info": {"props": {
        "media.class": "Audio/Sink", "node.name": "alsa_output.pci-0000_00_04.0.analog-stereo",
        "node.description": "Built-in Audio Analog Stereo"}}},
      {"id": 46, "type": "PipeWire:Interface:Node", "info": {"props": {
        "media.class": "Audio/Source", "node.name": "alsa_input.pci-0000_00_04.0.analog-stereo",
        "node.description": "Built-in Audio Analog Stereo"}}},
      {"id": 52, "type": "PipeWire:Interface:Node", "info": {"props": {
        "media.class": "Audio/Sink", "node.name": "alsa_output.usb-QEMU_QEMU_USB_Audio-00.analog-stereo",
        "node.description": "QEMU USB Audio\u0007 Headset"}}},
      {"id": 60, "type": "PipeWire:Interface:Node", "info": {"props": {
        "media.class": "Stream/Output/Audio", "node.name": "baresip"}}},
      {"id": 61, "type": "PipeWire:Interface:Node", "info": {"props": {
        "media.class": "Audio/Sink", "node.name": "echo-cancel-sink"}}},
      {"id": 70, "type": "PipeWire:Interface:Node", "info": null},
      {"id": 40, "type": "PipeWire:Interface:Metadata", "props": {"metadata.name": "default"},
       "metadata": [
        {"subject": 0, "key": "default.audio.sink", "type": "Spa:String:JSON",
         "value": {"name": "alsa_output.usb-QEMU_QEMU_USB_Audio-00.analog-stereo"}},
        {"subject": 0, "key": "default.audio.source", "type": "Spa:String:JSON",
         "value": {"name": "alsa_input.pci-0000_00_04.0.analog-stereo"}}]}
    ]"#;

    #[test]
    fn a_dump_gives_the_cards_devices_and_the_defaults() {
        let d = parse_dump(DUMP.as_bytes()).unwrap();
        let ids = |v: &[Device]| v.iter().map(|d| d.id).collect::<Vec<_>>();
        assert_eq!(ids(&d.outputs), [45, 52]);
        assert_eq!(ids(&d.inputs), [46]);
        assert!(d.outputs[1].usb && !d.outputs[0].usb);
        assert_eq!(d.outputs[1].label, "QEMU USB Audio Headset");
        assert_eq!(d.output.as_deref(), Some(d.outputs[1].name.as_str()));
        assert_eq!(d.input.as_deref(), Some(d.inputs[0].name.as_str()));
    }

    #[test]
    fn what_is_no_dump_is_refused_and_odd_objects_are_skipped() {
        assert!(parse_dump(b"{}").is_err());
        assert!(parse_dump(b"not json").is_err());
        assert_eq!(parse_dump(b"[]").unwrap(), Devices::default());
        assert_eq!(
            parse_dump(br#"[{"id": -1, "type": "PipeWire:Interface:Node", "info": {"props": {"media.class": "Audio/Sink", "node.name": "alsa_x"}}}, 5, "x"]"#).unwrap(),
            Devices::default()
        );
        let long = format!(
            r#"[{{"id": 1, "type": "PipeWire:Interface:Node", "info": {{"props": {{"media.class": "Audio/Sink", "node.name": "alsa_x", "node.description": "{}"}}}}}}]"#,
            "x".repeat(500)
        );
        assert_eq!(
            parse_dump(long.as_bytes()).unwrap().outputs[0].label.len(),
            MAX_LABEL
        );
    }

    #[test]
    fn volumes_are_read_in_percent() {
        assert_eq!(parse_volume("Volume: 0.40\n"), Some(40));
        assert_eq!(parse_volume("Volume: 1.00 [MUTED]"), Some(100));
        assert_eq!(parse_volume("Volume: 9.99"), Some(150));
        for bad in ["", "Volume:", "Volume: NaN", "Volume: -1", "volume 0.4"] {
            assert_eq!(parse_volume(bad), None, "{bad}");
        }
    }
}
