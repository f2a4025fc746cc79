//! The desktop stick in the office, used as a person uses it: the example customer's stick
//! (desktop base, Secure Boot) boots in QEMU inside the office network (WireGuard, kamailio,
//! extension 2000), the session brings up the tunnel and the phone, and the kiosk shows the
//! phone page. Extension 2000 calls; the banner is read from QEMU's screendump (tesseract);
//! Enter, pressed through QEMU, answers; the screen says connected; Escape hangs up and the
//! call is in the session's list.
//!
//! The sound card (intel-hda with hda-duplex) has no sound behind it yet: the checks of real
//! sound both ways ([`homestick_testkit::audio`]) are not in this test yet (issue 25).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::flash_usb::Monitor;
use crate::kiosk::{desktop_base, Input, Screen};
use crate::session::{build_stick, office_profile, roster, row};
use homestick_testkit::office::*;
use homestick_testkit::qemu::{wait_console, Channel, Qemu};

/// What the kiosk and the session said, the sound servers' state and the browser's policy
/// (through the test channel), to explain a failure.
fn journal(sock: &Path) -> String {
    let mut c = Channel::connect(sock);
    let (out, _) = c.run(
        "journalctl -b --no-pager -o cat -u homestick-kiosk -u homestick-session | grep -v Populated | tail -n 80; \
         echo '--- sound'; ps -eo pid,user,args | grep -E 'pipewire|wireplumber|baresip' | grep -v grep; \
         ls -la /run/homestick-session/sound; cat /proc/asound/cards; \
         XDG_RUNTIME_DIR=/run/homestick-session/sound timeout 5 wpctl status 2>&1 | head -n 40; \
         echo '--- browser'; head -c 300 /run/homestick-session/firefox-policies.json",
    );
    out
}

/// The words tesseract reads on a screendump.
fn read_screen(file: &Path) -> String {
    let out = Command::new("tesseract")
        .arg(file)
        .args(["-", "-l", "eng", "--psm", "3"])
        .output()
        .expect("tesseract");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Screendumps read by OCR until the text holds every word of `want` (up to `secs`).
fn until_read(screen: &mut Screen, name: &str, want: &[&str], secs: u64) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (file, _) = screen.grab(name);
        let text = read_screen(&file);
        if want.iter().all(|w| text.contains(w)) {
            eprintln!("kiosk phone screenshot {} reads: {text}", file.display());
            return Ok(text);
        }
        if Instant::now() > deadline {
            return Err(format!("{} reads: {text}", file.display()));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn on_the_desktop_stick_in_the_office_a_call_from_2000_rings_on_the_screen_and_is_answered_by_key()
{
    let site = &MUSTERHAUSEN;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    test_ca(dir, site);
    let (office_key, office_pub) = wg_keys();
    let profile = office_profile(dir, site, &office_pub);
    let (filled, export) = roster(dir, site, &profile);
    let img = build_stick(dir, &desktop_base(), &profile, &filled, "ben");
    let ext = row(&filled, "ben")["sip.extension"].clone();
    let office = start_office(dir, site, &export, &office_key);
    let vars = dir.join("vars.fd");
    fs::copy(homestick_testkit::OVMF_SNAKEOIL_VARS, &vars).unwrap();
    let mon = dir.join("monitor.sock");
    let sock = dir.join("test.sock");
    let q = homestick_testkit::qemu_secure_boot(&vars);
    let mut qemu = Command::new("ip");
    qemu.args(["netns", "exec", &office.ns])
        .arg(q.get_program());
    qemu.args(q.get_args());
    qemu.args(["-m", "2048", "-smp", "2"])
        .arg("-drive")
        .arg(format!(
            "if=virtio,format=raw,snapshot=on,file={}",
            img.display()
        ))
        .args(["-netdev", "tap,id=n0,ifname=hstap0,script=no,downscript=no"])
        .args([
            "-device",
            "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,romfile=",
        ])
        .args([
            "-vga",
            "none",
            "-device",
            "virtio-gpu-pci",
            "-display",
            "none",
        ])
        .args(["-audiodev", "none,id=snd0", "-device", "intel-hda"])
        .args(["-device", "hda-duplex,audiodev=snd0"])
        .args(["-device", "virtio-serial-pci"])
        .arg("-chardev")
        .arg(format!(
            "socket,id=tc,path={},server=on,wait=off",
            sock.display()
        ))
        .args(["-device", "virtserialport,chardev=tc,name=homestick.test"])
        .arg("-monitor")
        .arg(format!("unix:{},server=on,wait=off", mon.display()));
    let vm = Qemu::spawn(&mut qemu);
    let aor = format!("sip:{ext}@{}", site.sip_names[0]);
    wait_console(
        &vm,
        &format!("homestick-session: sip registered {aor}"),
        1200,
    );
    let shots = homestick_testkit::env::screenshot_dir();
    fs::create_dir_all(&shots).unwrap();
    let mut screen = Screen {
        m: Monitor::connect(&mon),
        dir: shots,
    };
    let idle = until_read(&mut screen, "kiosk-phone-idle", &[&ext, "Phone ready"], 300);
    assert!(
        idle.is_ok(),
        "the phone page never said ready: {idle:?}\n{}",
        vm.console()
    );
    // A click into the page, as a person would; then the office calls.
    screen.press(&Input::Mouse(1));
    office.ext_command(&format!("/dial {ext}"));
    // The banner's lines in two languages: OCR reads the columns apart ("Call … from 2000").
    let ringing = until_read(
        &mut screen,
        "kiosk-phone-ringing",
        &["Anruf von 2000", "Answer (Enter)"],
        60,
    );
    assert!(
        ringing.is_ok(),
        "no banner: {ringing:?}\next2000:\n{}",
        office.log("ext2000")
    );
    screen.press(&Input::Keys(&["ret"]));
    let call = until_read(
        &mut screen,
        "kiosk-phone-in-call",
        &["Connected", "Hang up"],
        60,
    );
    assert!(
        call.is_ok(),
        "Enter did not answer: {call:?}\n{}",
        journal(&sock)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !office.log("ext2000").contains("Call established") {
        assert!(
            Instant::now() < deadline,
            "ext2000:\n{}",
            office.log("ext2000")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(3));
    screen.press(&Input::Keys(&["esc"]));
    let after = until_read(&mut screen, "kiosk-phone-after", &["from 2000"], 60);
    assert!(
        after.is_ok(),
        "Escape did not hang up: {after:?}\n{}",
        journal(&sock)
    );
    let c = vm.console();
    assert!(
        c.contains("call established") && c.contains("call ended"),
        "{c}"
    );
}
