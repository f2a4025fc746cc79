//! The desktop base's kiosk in QEMU, used as a person at the PC would use it: key presses and
//! clicks go in through QEMU's monitor (`sendkey`, `mouse_button`), and what the person sees
//! is read from QEMU's screendumps. One boot serves every case.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::flash_usb::Monitor;
use crate::session::secure_boot_build;
use homestick_testkit::qemu::Qemu;
use homestick_testkit::qemu::{wait_console, Channel};

pub(crate) fn desktop_base() -> PathBuf {
    homestick_testkit::env::desktop_base()
}

/// target/ of this checkout.
/// A PPM (P6) screendump: width, height, RGB pixels.
pub(crate) struct Shot {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Shot {
    pub(crate) fn read(path: &Path) -> Shot {
        let b = fs::read(path).unwrap();
        let mut fields = Vec::new();
        let mut at = 0;
        while fields.len() < 4 {
            while b[at].is_ascii_whitespace() {
                at += 1;
            }
            let start = at;
            while !b[at].is_ascii_whitespace() {
                at += 1;
            }
            fields.push(String::from_utf8_lossy(&b[start..at]).into_owned());
        }
        assert_eq!(fields[0], "P6", "{}", path.display());
        let (w, h) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
        Shot {
            w,
            h,
            px: b[at + 1..].to_vec(),
        }
    }

    /// The kiosk's page: the light page colour covers a third of the screen and the top rows
    /// (no tabs, no address bar), and the status page's box or the phone page's connection
    /// chips show.
    fn is_status_page(&self) -> Option<String> {
        let n = self.w * self.h;
        let count = |rgb: [u8; 3]| self.px.chunks(3).filter(|p| p == &rgb).count();
        // #f4f4f4 page background; the status page's #f6e0b5 or #cfeccf box; the phone page's
        // chips #bfe6c8 (up), #f3e2b3 (waiting), #f5c9c4 (down), whose share is smaller.
        let page = count([0xf4, 0xf4, 0xf4]);
        let boxed = count([0xf6, 0xe0, 0xb5]) + count([0xcf, 0xec, 0xcf]);
        let boxed = boxed.max(self.chip_pixels() * 4);
        let top = self.px[..self.w * 3 * 8]
            .chunks(3)
            .all(|p| p == [0xf4, 0xf4, 0xf4]);
        (page * 3 > n && boxed * 50 > n && top).then(|| {
            format!(
                "{}x{}: page {:.0} %, status box {:.0} %",
                self.w,
                self.h,
                page as f64 * 100.0 / n as f64,
                boxed as f64 * 100.0 / n as f64
            )
        })
    }

    /// The phone page: its connection chips show (the status page has none).
    fn is_phone_page(&self) -> bool {
        self.is_status_page().is_some() && self.chip_pixels() * 200 > self.w * self.h
    }

    /// Pixels in the phone page's chip colours: #bfe6c8 (up), #f3e2b3 (waiting), #f5c9c4 (down).
    fn chip_pixels(&self) -> usize {
        let colours = [[0xbf, 0xe6, 0xc8], [0xf3, 0xe2, 0xb3], [0xf5, 0xc9, 0xc4]];
        self.px
            .chunks(3)
            .filter(|p| colours.iter().any(|c| p == c))
            .count()
    }

    /// The share of pixels (in per mille) that differ from `other`'s.
    fn differs_from(&self, other: &Shot) -> f64 {
        if (self.w, self.h) != (other.w, other.h) {
            return 1000.0;
        }
        let diff = self
            .px
            .chunks(3)
            .zip(other.px.chunks(3))
            .filter(|(a, b)| a != b)
            .count();
        diff as f64 * 1000.0 / (self.w * self.h) as f64
    }
}

/// QEMU's screen and input.
pub(crate) struct Screen {
    pub(crate) m: Monitor,
    pub(crate) dir: PathBuf,
}

impl Screen {
    pub(crate) fn grab(&mut self, name: &str) -> (PathBuf, Shot) {
        let file = self.dir.join(format!("{name}.ppm"));
        self.m.run(&format!("screendump {}", file.display()));
        let shot = Shot::read(&file);
        (file, shot)
    }

    /// Press as a person does: a pause after each key (an emulated PC under load loses keys
    /// typed faster), and time for what a shortcut opens before typing into it.
    pub(crate) fn press(&mut self, input: &Input) {
        match input {
            Input::Keys(keys) => {
                for k in *keys {
                    self.m.run(&format!("sendkey {k}"));
                    std::thread::sleep(Duration::from_millis(1500));
                }
            }
            Input::Type(text) => {
                for c in text.chars() {
                    self.m.run(&format!("sendkey {}", key_name(c)));
                    std::thread::sleep(Duration::from_millis(300));
                }
            }
            Input::Mouse(buttons) => {
                self.m.run(&format!("mouse_button {buttons}"));
                std::thread::sleep(Duration::from_millis(200));
                self.m.run("mouse_button 0");
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    /// Screendumps until one satisfies `want` (up to `secs`); the last one otherwise.
    fn until(
        &mut self,
        name: &str,
        secs: u64,
        want: impl Fn(&Shot) -> bool,
    ) -> (PathBuf, Shot, bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (file, shot) = self.grab(name);
            if want(&shot) {
                return (file, shot, true);
            }
            if Instant::now() > deadline {
                return (file, shot, false);
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }
}

/// QEMU's key name for a character on a US keyboard (the kiosk's keymap in this test).
fn key_name(c: char) -> String {
    match c {
        'a'..='z' | '0'..='9' => c.to_string(),
        ':' => "shift-semicolon".into(),
        '/' => "slash".into(),
        '.' => "dot".into(),
        '-' => "minus".into(),
        '\n' => "ret".into(),
        _ => panic!("no key for {c:?}"),
    }
}

pub(crate) enum Input {
    Keys(&'static [&'static str]),
    Type(&'static str),
    /// Buttons held down, as QEMU's mouse_button takes them (1 left, 2 right, 4 middle).
    Mouse(u8),
}

/// What a person might press to get out of the kiosk: each case's inputs, one after another.
const ESCAPES: &[(&str, &[Input])] = &[
    (
        "Ctrl+L, then about:preferences",
        &[Input::Keys(&["ctrl-l"]), Input::Type("about:preferences\n")],
    ),
    (
        "F6, then about:support",
        &[Input::Keys(&["f6"]), Input::Type("about:support\n")],
    ),
    (
        "F6, then chrome://browser/content/browser.xhtml",
        &[
            Input::Keys(&["f6"]),
            Input::Type("chrome://browser/content/browser.xhtml\n"),
        ],
    ),
    (
        "typing about:config on the page",
        &[Input::Type("about:config\n")],
    ),
    ("Alt (menu bar), Alt+F", &[Input::Keys(&["alt", "alt-f"])]),
    ("F10 (menu bar)", &[Input::Keys(&["f10"])]),
    ("F1 (help)", &[Input::Keys(&["f1"])]),
    ("F7 (caret browsing)", &[Input::Keys(&["f7"])]),
    ("F11 (leave full screen)", &[Input::Keys(&["f11"])]),
    ("F12 (developer tools)", &[Input::Keys(&["f12"])]),
    (
        "Ctrl+Shift+I (developer tools)",
        &[Input::Keys(&["ctrl-shift-i"])],
    ),
    (
        "Ctrl+Shift+J (browser console)",
        &[Input::Keys(&["ctrl-shift-j"])],
    ),
    ("Ctrl+N (new window)", &[Input::Keys(&["ctrl-n"])]),
    (
        "Ctrl+Shift+P (private window)",
        &[Input::Keys(&["ctrl-shift-p"])],
    ),
    ("Ctrl+T (new tab)", &[Input::Keys(&["ctrl-t"])]),
    ("Ctrl+O (open a file)", &[Input::Keys(&["ctrl-o"])]),
    ("Ctrl+S (save the page)", &[Input::Keys(&["ctrl-s"])]),
    ("Ctrl+P (print)", &[Input::Keys(&["ctrl-p"])]),
    ("Ctrl+U (page source)", &[Input::Keys(&["ctrl-u"])]),
    ("Ctrl+I (page info)", &[Input::Keys(&["ctrl-i"])]),
    ("Ctrl+H (history)", &[Input::Keys(&["ctrl-h"])]),
    ("Ctrl+B (bookmarks)", &[Input::Keys(&["ctrl-b"])]),
    (
        "Ctrl+Shift+O (library window)",
        &[Input::Keys(&["ctrl-shift-o"])],
    ),
    (
        "Ctrl+Shift+Y (downloads)",
        &[Input::Keys(&["ctrl-shift-y"])],
    ),
    (
        "Ctrl+Shift+Delete (clear history)",
        &[Input::Keys(&["ctrl-shift-delete"])],
    ),
    ("Ctrl+F (find bar)", &[Input::Keys(&["ctrl-f"])]),
    ("Ctrl+K (web search)", &[Input::Keys(&["ctrl-k"])]),
    ("Ctrl+W (close the tab)", &[Input::Keys(&["ctrl-w"])]),
    ("Ctrl+Q (quit)", &[Input::Keys(&["ctrl-q"])]),
    (
        "Ctrl+Alt+F2 (another console)",
        &[Input::Keys(&["ctrl-alt-f2"])],
    ),
    ("the menu key (context menu)", &[Input::Keys(&["menu"])]),
    ("a right click (context menu)", &[Input::Mouse(2)]),
    ("a middle click (load the clipboard)", &[Input::Mouse(4)]),
];

/// The journal's lines of the kiosk, to explain a failure (the base's test channel).
fn kiosk_journal(channel: &Path) -> String {
    let mut c = Channel::connect(channel);
    let (out, _) = c.run(
        "journalctl -b --no-pager -o cat -u homestick-kiosk -u seatd | tail -n 60; systemctl --no-pager status homestick-kiosk | head -n 20; grep -E '^(N|H):' /proc/bus/input/devices; ls -l /dev/input",
    );
    out
}

#[test]
fn the_desktop_base_boots_to_its_kiosk_and_no_key_press_or_click_leaves_the_status_page() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let img = dir.join("desktop.img");
    secure_boot_build(dir, &desktop_base(), &demo_profile(), &img, &[]);
    let vars = dir.join("vars.fd");
    fs::copy(homestick_testkit::OVMF_SNAKEOIL_VARS, &vars).unwrap();
    let mon = dir.join("monitor.sock");
    let channel = dir.join("test.sock");
    let mut cmd = homestick_testkit::qemu_secure_boot(&vars);
    cmd.args(["-m", "2048", "-smp", "2"])
        .arg("-drive")
        .arg(format!(
            "if=virtio,format=raw,snapshot=on,file={}",
            img.display()
        ))
        // One display adapter: wlroots cannot use a second one without PRIME import.
        .args(["-vga", "none", "-device", "virtio-gpu-pci"])
        // A test-channel port: used only to explain a failure.
        .args(["-device", "virtio-serial-pci"])
        .arg("-chardev")
        .arg(format!(
            "socket,id=tc,path={},server=on,wait=off",
            channel.display()
        ))
        .args(["-device", "virtserialport,chardev=tc,name=homestick.test"])
        .args(["-display", "none"])
        .arg("-monitor")
        .arg(format!("unix:{},server=on,wait=off", mon.display()));
    let vm = Qemu::spawn(&mut cmd);
    wait_console(&vm, "homestick: image verified", 600);
    let shots = homestick_testkit::env::screenshot_dir();
    fs::create_dir_all(&shots).unwrap();
    let mut screen = Screen {
        m: Monitor::connect(&mon),
        dir: shots.clone(),
    };
    // The kiosk's start page: the customer's name on a light page with the status box.
    let (file, shot, ok) = screen.until("desktop-kiosk", 600, |s| s.is_status_page().is_some());
    assert!(
        ok,
        "the screen never showed the kiosk page (last screenshot {}):\n{}\nthe kiosk's journal:\n{}",
        file.display(),
        vm.console(),
        kiosk_journal(&channel)
    );
    eprintln!(
        "kiosk screenshot {} ({})",
        file.display(),
        shot.is_status_page().unwrap_or_default()
    );
    let c = vm.console();
    assert!(!c.contains("login:"), "{c}");
    // A click into the page first, as a person would (the page has the keyboard then); the
    // reference is the page after it, once the session's messages stopped changing it (this
    // PC has no office: the VPN server is not found, which the page says).
    screen.press(&Input::Mouse(1));
    let shot = settled(&mut screen);
    keys_reach_the_browser(&mut screen, &shot, &channel);
    let failures = try_escapes(&mut screen, &shot);
    // Whatever a case set off late is still on the screen now.
    std::thread::sleep(Duration::from_secs(10));
    let (file, last) = screen.grab("kiosk-after-all-cases");
    let moved = last.differs_from(&shot);
    assert!(
        failures.is_empty() && moved <= TOLERANCE,
        "the kiosk left its status page:\n{}\nafter all cases the screen differs by {moved:.1} ‰ ({})",
        failures.join("\n"),
        file.display()
    );
}

/// The screen once two screendumps 10 seconds apart show the same page (at most 3 minutes).
///
/// The profile has a phone: the status page opens the phone page, which a virtual machine's
/// browser may show blank for half a minute while it starts the page's process; only the
/// phone page counts as settled.
fn settled(screen: &mut Screen) -> Shot {
    let (_, mut before) = screen.grab("kiosk-settling");
    for _ in 0..18 {
        std::thread::sleep(Duration::from_secs(10));
        let (file, now) = screen.grab("kiosk-settling");
        if now.is_phone_page() && now.differs_from(&before) <= TOLERANCE {
            eprintln!("kiosk reference {}", file.display());
            return now;
        }
        before = now;
    }
    panic!("the kiosk never settled on its phone page for 3 minutes");
}

/// Differences a screen may have and still show the same page (a pointer drawn where it is).
const TOLERANCE: f64 = 2.0;

/// The control: the browser's zoom (Ctrl and +, Ctrl and 0) changes the screen and restores
/// it, so key presses do reach the browser and a case that changes nothing has been tried.
fn keys_reach_the_browser(screen: &mut Screen, reference: &Shot, channel: &Path) {
    let mut zoomed = false;
    let mut file = PathBuf::new();
    for _ in 0..3 {
        screen.press(&Input::Keys(&["ctrl-equal"]));
        let (f, _, z) = screen.until("kiosk-zoomed", 20, |s| s.differs_from(reference) > 20.0);
        (file, zoomed) = (f, z);
        if zoomed {
            break;
        }
    }
    assert!(
        zoomed,
        "Ctrl and + did not zoom the kiosk's page: key presses do not reach the browser ({})\n{}",
        file.display(),
        kiosk_journal(channel)
    );
    screen.press(&Input::Keys(&["ctrl-0"]));
    let (file, _, back) = screen.until("kiosk-zoom-reset", 60, |s| {
        s.differs_from(reference) <= TOLERANCE
    });
    assert!(
        back,
        "Ctrl and 0 did not bring the page back to its size ({})",
        file.display()
    );
    eprintln!("kiosk control: Ctrl and + zoomed the page, Ctrl and 0 restored it");
}

/// Each escape attempt, reported on its own; the failures, with their screendumps.
fn try_escapes(screen: &mut Screen, reference: &Shot) -> Vec<String> {
    let mut failures = Vec::new();
    for (i, (name, inputs)) in ESCAPES.iter().enumerate() {
        for input in *inputs {
            screen.press(input);
        }
        // Two looks: soon after, and once the browser had time to open what it would open.
        let mut worst = (0.0, PathBuf::new());
        for look in 0..2 {
            std::thread::sleep(Duration::from_millis(1500 + 1500 * look));
            let (file, shot) = screen.grab(&format!("kiosk-case-{i:02}-{look}"));
            let d = shot.differs_from(reference);
            if d > worst.0 {
                worst = (d, file);
            }
        }
        if worst.0 <= TOLERANCE {
            eprintln!(
                "kiosk case {name}: the status page stayed ({:.1} ‰ of pixels differ)",
                worst.0
            );
        } else {
            let line = format!(
                "kiosk case {name}: the screen changed ({:.1} ‰ of pixels, {})",
                worst.0,
                worst.1.display()
            );
            eprintln!("{line}");
            failures.push(line);
        }
    }
    failures
}
