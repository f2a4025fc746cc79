//! Real sound for the QEMU tests: a PulseAudio server the test starts in its own directory,
//! which QEMU's sound cards play into and record from (`-audiodev pa`). Each of the PC's
//! outputs is a null sink whose monitor the test records; the PC's microphone is a sine source
//! of a frequency the test chooses. Samples are read back as 8 kHz mono and their frequency
//! measured ([`dominant`]): a test checks the tone, not "some bytes".

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::office::Bg;

/// The rate recordings are read at (a telephone's band fits: G.711 carries up to 4 kHz).
pub const RATE: u32 = 8000;

/// A PulseAudio server for one test, stopped when dropped.
#[derive(Debug)]
pub struct Pulse {
    pub dir: PathBuf,
    /// Held for its drop: the server stops with the test.
    _server: Bg,
    recordings: Vec<Bg>,
}

impl Pulse {
    /// Start the server with one null sink per name in `outputs` and a sine source `mouth`
    /// at `mouth_hz`.
    pub fn start(dir: &Path, outputs: &[&str], mouth_hz: u32) -> Pulse {
        fs::create_dir_all(dir).unwrap();
        let socket = dir.join("native");
        let mut script = format!(
            "load-module module-native-protocol-unix socket={} auth-anonymous=1\n",
            socket.display()
        );
        for o in outputs {
            script.push_str(&format!(
                "load-module module-null-sink sink_name={o} rate=48000 channels=2\n"
            ));
        }
        script.push_str(&format!(
            "load-module module-sine-source source_name=mouth rate=48000 frequency={mouth_hz}\n"
        ));
        fs::write(dir.join("test.pa"), script).unwrap();
        let log = fs::File::create(dir.join("pulseaudio.log")).unwrap();
        let child = Command::new("pulseaudio")
            .args([
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--use-pid-file=no",
            ])
            .args([
                "--system=no",
                "--disallow-exit",
                "--log-target=stderr",
                "-F",
            ])
            .arg(dir.join("test.pa"))
            .env("HOME", dir)
            .env("XDG_RUNTIME_DIR", dir)
            .env("PULSE_RUNTIME_PATH", dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("pulseaudio (package pulseaudio)");
        let pulse = Pulse {
            dir: dir.to_path_buf(),
            _server: Bg(child, "pulseaudio"),
            recordings: Vec::new(),
        };
        let start = Instant::now();
        while !pulse.pactl(&["info"]).0 {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "pulseaudio did not start: {}",
                fs::read_to_string(dir.join("pulseaudio.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        pulse
    }

    /// QEMU's `-audiodev` for a card that records `mouth` and plays into `output`, through
    /// QEMU's SDL driver on this server (set on `qemu`'s environment; one such card per QEMU).
    /// Not the PulseAudio driver: QEMU 7.2's records at about 2 % of real time here (an
    /// `arecord` of 5 seconds in the guest got 850 samples of 40 000, with intel-hda and with
    /// AC97 alike), while playing is right; SDL's records in real time.
    pub fn sdl_audiodev(&self, qemu: &mut Command, id: &str, output: &str) -> String {
        qemu.env("SDL_AUDIODRIVER", "pulseaudio")
            .env(
                "PULSE_SERVER",
                format!("unix:{}", self.dir.join("native").display()),
            )
            .env("PULSE_SINK", output)
            .env("PULSE_SOURCE", "mouth");
        format!("sdl,id={id},timer-period=5000,in.frequency=48000,out.frequency=48000")
    }

    /// QEMU's `-audiodev` for a card that only plays (a USB headset), into `output`, through
    /// QEMU's PulseAudio driver.
    pub fn audiodev(&self, id: &str, output: &str) -> String {
        format!(
            "pa,id={id},server=unix:{},out.name={output},timer-period=5000,out.frequency=48000",
            self.dir.join("native").display()
        )
    }

    fn pactl(&self, args: &[&str]) -> (bool, String) {
        let o = Command::new("pactl")
            .args(args)
            .env(
                "PULSE_SERVER",
                format!("unix:{}", self.dir.join("native").display()),
            )
            .output()
            .expect("pactl (package pulseaudio-utils)");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    }

    /// Record what the PC plays into `output` from now on (8 kHz mono, 16-bit) into a file.
    pub fn record(&mut self, output: &str) -> Recording {
        let file = self.dir.join(format!("{output}.raw"));
        let out = fs::File::create(&file).unwrap();
        let child = Command::new("parec")
            .args(["--raw", "--format=s16le", "--channels=1"])
            .arg(format!("--rate={RATE}"))
            .arg(format!("--device={output}.monitor"))
            .env(
                "PULSE_SERVER",
                format!("unix:{}", self.dir.join("native").display()),
            )
            .stdout(out)
            .spawn()
            .expect("parec (package pulseaudio-utils)");
        self.recordings.push(Bg(child, "parec"));
        Recording {
            file,
            output: output.to_string(),
        }
    }

    /// Each recording's level and tone over its last two seconds (for a failure's message).
    pub fn levels(&self) -> String {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(output) = name.strip_suffix(".raw") {
                let s = samples_s16le(&fs::read(e.path()).unwrap_or_default());
                let tail = &s[s.len().saturating_sub(2 * RATE as usize)..];
                out.push(format!(
                    "{output}: {} s, level {:.4}, tone {:?}",
                    s.len() / RATE as usize,
                    level(tail),
                    dominant(tail, RATE)
                ));
            }
        }
        out.join("; ")
    }

    /// The server's sinks, sources and the streams connected to them (for a failure's message).
    pub fn streams(&self) -> String {
        ["sinks", "sources", "sink-inputs", "source-outputs"]
            .iter()
            .map(|what| format!("{what}:\n{}", self.pactl(&["list", "short", what]).1))
            .collect()
    }

    /// The server's log (for a failure's message).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("pulseaudio.log")).unwrap_or_default()
    }
}

/// A recording growing in a file; read from any second on.
#[derive(Debug, Clone)]
pub struct Recording {
    pub file: PathBuf,
    output: String,
}

impl Recording {
    /// The output recorded ("speaker", "headset").
    pub fn name(&self) -> &str {
        &self.output
    }

    /// The samples recorded so far.
    pub fn samples(&self) -> Vec<i16> {
        samples_s16le(&fs::read(&self.file).unwrap_or_default())
    }

    /// Seconds recorded so far.
    pub fn seconds(&self) -> f64 {
        self.samples().len() as f64 / f64::from(RATE)
    }
}

/// Little-endian 16-bit samples.
pub fn samples_s16le(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// The samples of a 16-bit PCM WAV file (baresip's sndfile recordings), and its rate.
pub fn wav(bytes: &[u8]) -> Option<(u32, Vec<i16>)> {
    if bytes.get(..4)? != b"RIFF" || bytes.get(8..12)? != b"WAVE" {
        return None;
    }
    let (mut at, mut rate, mut channels) = (12, None, 1u16);
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let mut len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().ok()?) as usize;
        if id == b"data" && len == 0 {
            // A recording still being written: its length is set when it is closed.
            len = bytes.len() - (at + 8);
        }
        let body = bytes.get(at + 8..(at + 8 + len).min(bytes.len()))?;
        match id {
            b"fmt " if body.len() >= 16 => {
                channels = u16::from_le_bytes([body[2], body[3]]);
                rate = Some(u32::from_le_bytes(body[4..8].try_into().ok()?));
                if u16::from_le_bytes([body[14], body[15]]) != 16 {
                    return None;
                }
            }
            b"data" => {
                let all = samples_s16le(body);
                let mono = all.iter().step_by(usize::from(channels.max(1))).copied();
                return Some((rate?, mono.collect()));
            }
            _ => {}
        }
        at += 8 + len + (len & 1);
    }
    None
}

/// Root mean square of `s`, as a fraction of full scale.
pub fn level(s: &[i16]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let sum: f64 = s.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    (sum / s.len() as f64).sqrt() / 32768.0
}

/// The power of frequency `hz` in `s` (Goertzel), normalised by the number of samples.
fn power(s: &[i16], rate: u32, hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / f64::from(rate);
    let c = 2.0 * w.cos();
    let (mut a, mut b) = (0.0, 0.0);
    for &x in s {
        let n = f64::from(x) / 32768.0 + c * a - b;
        b = a;
        a = n;
    }
    (a * a + b * b - c * a * b) / (s.len() as f64).powi(2)
}

/// The strongest frequency in `s` between 100 Hz and 3.5 kHz, to 5 Hz, and its share of the
/// signal's power (a clean tone is near 0.5: a sine's power splits between its two bins).
pub fn dominant(s: &[i16], rate: u32) -> Option<(f64, f64)> {
    if s.len() < rate as usize / 10 || level(s) < 0.001 {
        return None;
    }
    let scan = |from: f64, to: f64, step: f64| {
        let mut best = (from, 0.0);
        let mut f = from;
        while f <= to {
            let p = power(s, rate, f);
            if p > best.1 {
                best = (f, p);
            }
            f += step;
        }
        best
    };
    let coarse = scan(100.0, 3500.0, 10.0);
    let (hz, p) = scan(coarse.0 - 10.0, coarse.0 + 10.0, 1.0);
    let total = level(s).powi(2);
    Some(((hz / 5.0).round() * 5.0, p / total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f64, rate: u32, secs: f64, amp: f64) -> Vec<i16> {
        let n = (f64::from(rate) * secs) as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (amp * 32767.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn a_tone_s_frequency_is_found_and_silence_has_none() {
        for hz in [440.0, 697.0, 1000.0, 1633.0, 3000.0] {
            let (got, share) = dominant(&tone(hz, RATE, 1.0, 0.3), RATE).unwrap();
            assert!((got - hz).abs() <= 5.0, "{hz}: {got}");
            assert!(share > 0.4, "{hz}: share {share}");
        }
        assert_eq!(dominant(&[0; 8000], RATE), None);
        assert_eq!(dominant(&tone(440.0, RATE, 0.05, 0.3), RATE), None);
    }

    #[test]
    fn noise_is_no_tone() {
        let mut x = 1u32;
        let noise: Vec<i16> = (0..8000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as i16
            })
            .collect();
        let (_, share) = dominant(&noise, RATE).unwrap();
        assert!(share < 0.05, "{share}");
    }

    #[test]
    fn wav_files_are_read_and_bad_ones_refused() {
        let data: Vec<u8> = tone(1000.0, 8000, 0.5, 0.5)
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let mut f = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0".to_vec();
        f.extend(8000u32.to_le_bytes());
        f.extend(16000u32.to_le_bytes());
        f.extend(b"\x02\0\x10\0data");
        f.extend((data.len() as u32).to_le_bytes());
        f.extend(&data);
        let (rate, s) = wav(&f).unwrap();
        assert_eq!((rate, s.len()), (8000, 4000));
        assert_eq!(dominant(&s, rate).unwrap().0, 1000.0);
        // Still being written: the data chunk's length is 0 until the file is closed.
        let mut open = f.clone();
        open[40..44].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(wav(&open).unwrap().1.len(), 4000);
        assert_eq!(wav(b"RIFX"), None);
        assert_eq!(wav(&f[..30]), None);
    }
}
