//! The kiosk's phone page in a real browser against a real PBX: an office network namespace
//! with kamailio and extension 2000 (baresip, SRTP), the stick's baresip with the profile's
//! control interface, `homestick-session page` serving the page, and headless Chromium
//! (chromedriver) pressing keys and clicking as a person does. The stick's boot, its tunnel and
//! its sound are the QEMU tests' part; this one is the page, the session's phone service and
//! baresip's control protocol, end to end.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use homestick_testkit::office::{self, empty_office, start_pbx, Office, MUSTERHAUSEN};
use homestick_testkit::webdriver::{Browser, ENTER, ESCAPE};

use crate::common::*;

/// The stick's address in the office, its number and SIP credentials.
const STICK: &str = "10.20.0.7";
const NUMBER: &str = "1001";
const AUTH: (&str, &str) = ("stick1001", "secret-1001");

/// The office: the PBX and the extension, the stick's baresip and page, chromedriver, and a
/// veth pair through which the test reaches chromedriver (and tries to reach the page).
struct Setup {
    office: Office,
    /// The namespace's address on the veth, and the test's.
    ns_addr: String,
    host_addr: String,
    dir: std::path::PathBuf,
}

fn setup(dir: &Path) -> Setup {
    let pid = std::process::id();
    let ns = format!("hs-phone-{pid}");
    let mut o = empty_office(&ns, dir);
    let site = &MUSTERHAUSEN;
    o.exec(&format!(
        "ip addr add {}/32 dev lo && ip addr add {}/32 dev lo && ip addr add {STICK}/32 dev lo",
        site.sip, site.ext
    ));
    let k = pid % 250 + 1;
    let (host_if, ns_if) = (format!("hsph{pid}h"), format!("hsph{pid}n"));
    office::sh_ok(&format!(
        "ip link add {host_if} type veth peer name {ns_if} && ip link set {ns_if} netns {ns} && \
         ip addr add 10.251.{k}.1/30 dev {host_if} && ip link set {host_if} up && \
         ip netns exec {ns} sh -c 'ip addr add 10.251.{k}.2/30 dev {ns_if} && ip link set {ns_if} up'"
    ));
    office::test_ca(dir, site);
    start_pbx(
        &mut o,
        site,
        &format!("id,user,name,password\nx,{},x,{}\n", AUTH.0, AUTH.1),
    );
    Setup {
        office: o,
        ns_addr: format!("10.251.{k}.2"),
        host_addr: format!("10.251.{k}.1"),
        dir: dir.to_path_buf(),
    }
}

/// The stick's baresip: the profile's control interface and manual answer, SIP over TLS from
/// a port of its own choosing as the rendered profile has it (a phone is no TLS server: the
/// office reaches it over the connection it registered on), the office's SRTP, sound through
/// aubridge (the QEMU test carries real sound).
fn start_stick_phone(s: &mut Setup) {
    let site = &MUSTERHAUSEN;
    let d = s.dir.join("stick-baresip");
    fs::create_dir_all(&d).unwrap();
    fs::write(
        d.join("config"),
        format!(
            "poll_method epoll\nsip_listen {STICK}:0\nsip_cafile {ca}\naudio_source aubridge,stick\naudio_player aubridge,stick\n\
             audio_alert aubridge,stick\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aubridge.so\n\
             module srtp.so\nmodule_app account.so\nmodule_app menu.so\nmodule_app ctrl_tcp.so\nctrl_tcp_listen {}\n",
            homestick_formats::paths::BARESIP_CTRL,
            ca = s.dir.join("ca.pem").display()
        ),
    )
    .unwrap();
    fs::write(d.join("accounts"), account_line(site)).unwrap();
    fs::write(d.join("contacts"), "").unwrap();
    let dir = d.to_str().unwrap().to_string();
    s.office
        .spawn("stick", &["env", "HOME=/tmp", "baresip", "-f", &dir]);
}

fn account_line(site: &office::Site) -> String {
    format!(
        "<sip:{NUMBER}@{domain};transport=tls>;auth_user={u};auth_pass={p};outbound=\"sip:{sip}:5061;transport=tls\";\
         mediaenc={menc};answermode=manual;audio_codecs=PCMA/8000/1;regint=600\n",
        domain = site.sip_names[0],
        u = AUTH.0,
        p = AUTH.1,
        sip = site.sip,
        menc = site.ext_menc
    )
}

/// `homestick-session page` with the customer's rendered profile (its account line the
/// stick's) bind-mounted where the session reads it, in the office's mount namespace.
fn start_page(s: &mut Setup) {
    let profile = s.dir.join("profile");
    office::sh_ok(&format!(
        "cp -r {} {}",
        root().join("tests/golden/stadt-musterhausen").display(),
        profile.display()
    ));
    fs::write(
        profile.join("baresip/accounts"),
        account_line(&MUSTERHAUSEN),
    )
    .unwrap();
    let mount = homestick_formats::paths::PROFILE_MOUNT;
    let script = format!(
        "mkdir -p {mount} && mount --bind {} {mount} && exec {}",
        profile.display(),
        homestick_testkit::run::session_bin().display()
    );
    fs::create_dir_all(mount).unwrap();
    s.office
        .spawn("page", &["sh", "-c", &format!("{script} page")]);
}

fn start_browser(s: &mut Setup) -> Browser {
    s.office.spawn(
        "chromedriver",
        &[
            "chromedriver",
            "--port=9515",
            &format!("--allowed-ips={}", s.host_addr),
            "--allowed-origins=*",
        ],
    );
    Browser::open(&format!("http://{}:9515", s.ns_addr), 1280, 800)
}

fn shot(b: &Browser, name: &str) -> std::path::PathBuf {
    let dir = homestick_testkit::env::screenshot_dir();
    fs::create_dir_all(&dir).unwrap();
    let f = dir.join(format!("phone-{name}.png"));
    b.screenshot(&f);
    eprintln!("phone page screenshot {}", f.display());
    f
}

/// Wait until `log` of the office contains `want`.
fn wait_log(o: &Office, log: &str, want: &str, secs: u64) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !o.log(log).contains(want) {
        if Instant::now() > deadline {
            return Err(format!("{log} never said {want:?}:\n{}", o.log(log)));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The call section's state text as it changes, until it contains `until` (or `secs` pass).
fn states_until(b: &Browser, until: &str, secs: u64) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let seen: Vec<String> = serde_json::from_value(
            b.script("return window.seenStates || []", serde_json::json!([])),
        )
        .unwrap_or_default();
        if seen.last().is_some_and(|t| t.contains(until)) || Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every text the call's state shows from now on, however briefly (a call answered at once
/// is "ringing" for milliseconds): the browser records them; [`states_until`] reads them.
fn record_states(b: &Browser) {
    b.script(
        "window.seenStates = []; const el = document.getElementById('call-state'); \
         new MutationObserver(() => { const t = el.textContent; \
           if (t && window.seenStates[window.seenStates.length - 1] !== t) window.seenStates.push(t); }) \
         .observe(el, { childList: true, characterData: true, subtree: true });",
        serde_json::json!([]),
    );
}

#[test]
fn the_phone_page_answers_dials_mutes_holds_sends_tones_and_hangs_up_in_a_real_browser() {
    let d = tempfile::tempdir().unwrap();
    let mut s = setup(d.path());
    start_stick_phone(&mut s);
    start_page(&mut s);
    wait_log(
        &s.office,
        "kamailio",
        &format!("REGISTER sip:{NUMBER}@"),
        30,
    )
    .unwrap();
    let b = start_browser(&mut s);
    b.goto(&homestick_formats::paths::kiosk_url());
    let mut failures: Vec<String> = vec![];
    let mut case = |name: &str, r: Result<(), String>| {
        eprintln!(
            "phone case {name}: {}",
            if r.is_ok() { "ok" } else { "FAILED" }
        );
        if let Err(e) = r {
            failures.push(format!("{name}: {e}"));
        }
    };
    case("idle: registered, own number, the customer", idle(&b));
    shot(&b, "idle");
    case(
        "2000 calls: banner, Enter answers, Escape hangs up",
        incoming(&b, &s.office),
    );
    case(
        "typed on the dial pad: dialling, connected, hung up",
        outgoing(&b, &s.office),
    );
    case(
        "mute, hold, tones and the list",
        in_call_controls(&b, &s.office),
    );
    case("a caller rejected with the button", rejected(&b, &s.office));
    case("1024x768 and 1920x1080", sizes(&b));
    drop(b);
    case("the page's server from outside the PC", from_outside(&s));
    case(
        "the API from another page in the browser",
        other_origin(&mut s),
    );
    assert!(
        failures.is_empty(),
        "{}\n\nthe stick's baresip:\n{}\nthe PBX:\n{}",
        failures.join("\n\n"),
        s.office.log("stick"),
        s.office.log("kamailio")
    );
}

fn idle(b: &Browser) -> Result<(), String> {
    b.wait_text("#own", NUMBER, 20)
        .map_err(|t| format!("own number not shown: {t:?}"))?;
    b.wait_text("#customer", "Stadt Musterhausen", 5)
        .map_err(|t| format!("customer: {t:?}"))?;
    let chip = |id: &str| {
        b.script(
            &format!("return document.getElementById('{id}').className"),
            serde_json::json!([]),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while chip("chip-sip") != "ok" {
        if Instant::now() > deadline {
            return Err(format!("the phone chip is {} ", chip("chip-sip")));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let calls = b.text("#calls");
    if !calls.contains("Noch keine Anrufe") {
        return Err(format!("list: {calls:?}"));
    }
    // A click beside the controls leaves the keyboard in the number.
    b.click("#status-text");
    let focus = b.script("return document.activeElement.id", serde_json::json!([]));
    if focus != "number" {
        return Err(format!(
            "after a click beside the controls the focus is on {focus}"
        ));
    }
    Ok(())
}

fn incoming(b: &Browser, o: &Office) -> Result<(), String> {
    o.ext_command(&format!("/dial {NUMBER}"));
    b.wait_text("#banner-text", "Anruf von 2000", 20)
        .map_err(|t| format!("no banner: {t:?}"))?;
    shot(b, "ringing");
    b.keys(ENTER);
    b.wait_text("#call-state", "Verbunden", 20)
        .map_err(|t| format!("Enter did not answer: {t:?}"))?;
    // The call's time counts on the page.
    std::thread::sleep(Duration::from_millis(2200));
    let t = b.text("#call-time");
    if !(t.starts_with("0:0") && t != "0:00") {
        return Err(format!("call time {t:?}"));
    }
    shot(b, "in-call");
    b.keys(ESCAPE);
    b.wait_text("#calls", "from 2000", 20)
        .map_err(|t| format!("Escape did not hang up (list {t:?})"))?;
    Ok(())
}

fn outgoing(b: &Browser, o: &Office) -> Result<(), String> {
    let before = o.log("kamailio").matches("INVITE sip:2000@").count();
    b.keys("2000");
    let typed = b.script(
        "return document.getElementById('number').value",
        serde_json::json!([]),
    );
    if typed != "2000" {
        return Err(format!("typed {typed}"));
    }
    record_states(b);
    b.keys(ENTER);
    let seen = states_until(b, "Verbunden", 20);
    if !seen.last().is_some_and(|s| s.contains("Verbunden")) {
        return Err(format!("states {seen:?}"));
    }
    if !seen[0].contains("Wählt") && !seen[0].contains("Klingelt") {
        return Err(format!(
            "the first state was not dialling or ringing: {seen:?}"
        ));
    }
    eprintln!("outgoing call states on the page: {seen:?}");
    let after = o.log("kamailio").matches("INVITE sip:2000@").count();
    if after != before + 1 {
        return Err(format!("kamailio saw {} INVITEs to 2000", after - before));
    }
    b.click("#hangup");
    b.wait_text("#calls", "to 2000", 20)
        .map_err(|t| format!("hang-up button: list {t:?}"))?;
    if !b.text("#call-state").is_empty() {
        return Err("the call is still shown".into());
    }
    Ok(())
}

fn in_call_controls(b: &Browser, o: &Office) -> Result<(), String> {
    b.keys("2000");
    b.keys(ENTER);
    b.wait_text("#call-state", "Verbunden", 20)
        .map_err(|t| format!("not connected: {t:?}"))?;
    b.keys("m");
    b.wait_text("#call-state", "stumm", 10)
        .map_err(|t| format!("M did not mute: {t:?}"))?;
    b.click("#mute");
    b.wait_text("#call-state", "Verbunden", 10)
        .map_err(|t| format!("the button did not unmute: {t:?}"))?;
    if b.text("#call-state").contains("stumm") {
        return Err("still muted".into());
    }
    let reinvites = o.log("ext2000").matches("got re-INVITE").count();
    b.keys("h");
    b.wait_text("#call-state", "Gehalten", 10)
        .map_err(|t| format!("H did not hold: {t:?}"))?;
    b.keys("h");
    b.wait_text("#call-state", "Verbunden", 10)
        .map_err(|t| format!("H did not resume: {t:?}"))?;
    // Hold and resume are each a re-INVITE at the other end.
    let after = o.log("ext2000").matches("got re-INVITE").count();
    if after < reinvites + 2 {
        return Err(format!(
            "extension 2000 got {} re-INVITEs for hold and resume",
            after - reinvites
        ));
    }
    b.keys("5");
    std::thread::sleep(Duration::from_millis(500));
    let digits = b.script(
        "return document.getElementById('number').value",
        serde_json::json!([]),
    );
    if digits != "5" {
        return Err(format!("the keypad shows {digits} after 5"));
    }
    // The stick's baresip sends it as an RTP event (RFC 4733); that the office hears it is the
    // QEMU sound test's part.
    wait_log(o, "stick", "send DTMF digit: '5'", 10).map_err(|e| format!("tones: {e}"))?;
    // Muted, Escape still hangs up (the QEMU test once saw it not).
    b.keys("m");
    b.wait_text("#call-state", "stumm", 10)
        .map_err(|t| format!("M did not mute before hanging up: {t:?}"))?;
    b.keys(ESCAPE);
    b.wait_text("#calls", "to 2000", 20)
        .map_err(|t| format!("Escape did not hang up a muted call: list {t:?}"))?;
    Ok(())
}

fn rejected(b: &Browser, o: &Office) -> Result<(), String> {
    o.ext_command(&format!("/dial {NUMBER}"));
    b.wait_text("#banner-text", "2000", 20)
        .map_err(|t| format!("no banner: {t:?}"))?;
    b.click("#reject");
    b.wait_text("#calls", "missed 2000", 20)
        .map_err(|t| format!("the rejected call is not listed as missed: {t:?}"))?;
    Ok(())
}

/// At both sizes: no sideways scrolling, and the number, the pad and the call button fully
/// on the screen.
fn sizes(b: &Browser) -> Result<(), String> {
    for (w, h) in [(1024, 768), (1920, 1080)] {
        b.viewport(w, h);
        std::thread::sleep(Duration::from_millis(300));
        let r = b.script(
            "const out = [];\
             if (document.documentElement.scrollWidth > innerWidth) out.push('scrolls sideways');\
             for (const id of ['number', 'pad', 'dial', 'chips', 'customer']) {\
               const r = document.getElementById(id).getBoundingClientRect();\
               if (r.left < 0 || r.top < 0 || r.right > innerWidth || r.bottom > innerHeight) out.push(id + ' off screen');\
             }\
             return out.join(', ');",
            serde_json::json!([]),
        );
        shot(b, &format!("{w}x{h}"));
        if r != "" {
            return Err(format!("{w}x{h}: {r}"));
        }
    }
    Ok(())
}

/// From the host (another machine, as far as the stick is concerned): nothing answers on the
/// page's or baresip's control port at the namespace's address.
fn from_outside(s: &Setup) -> Result<(), String> {
    for port in [8321, 4444] {
        let addr = format!("{}:{port}", s.ns_addr);
        let a: std::net::SocketAddr = addr.parse().unwrap();
        if std::net::TcpStream::connect_timeout(&a, Duration::from_secs(3)).is_ok() {
            return Err(format!("{addr} accepted a connection"));
        }
    }
    Ok(())
}

/// A page of another origin in the same browser (an intranet page, say) tries to read the
/// phone page (for its token), to post a dial request, and to open the event stream: all are
/// refused, and nothing is dialled.
fn other_origin(s: &mut Setup) -> Result<(), String> {
    let www = s.dir.join("www");
    fs::create_dir_all(&www).unwrap();
    fs::write(www.join("other.html"), OTHER_PAGE).unwrap();
    let w = www.to_str().unwrap().to_string();
    s.office.spawn(
        "other",
        &[
            "python3",
            "-m",
            "http.server",
            "8000",
            "--bind",
            "127.0.0.1",
            "--directory",
            &w,
        ],
    );
    std::thread::sleep(Duration::from_secs(1));
    let invites = s.office.log("kamailio").matches("INVITE sip:2000@").count();
    let b = Browser::open(&format!("http://{}:9515", s.ns_addr), 1280, 800);
    b.goto("http://127.0.0.1:8000/other.html");
    let out = b
        .wait_text("#out", "done", 20)
        .map_err(|t| format!("the other page did not finish: {t:?}"))?;
    eprintln!("another origin's attempts:\n{out}");
    for want in ["read: blocked", "events: refused"] {
        if !out.contains(want) {
            return Err(format!("{want:?} not in {out:?}"));
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    let after = s.office.log("kamailio").matches("INVITE sip:2000@").count();
    if after != invites {
        return Err("a call was placed".into());
    }
    let page = s.office.log("page");
    for want in [
        "refused GET /: from another origin",
        "refused POST /request: from another origin",
        "refused GET /events: from another origin",
    ] {
        if !page.contains(want) {
            return Err(format!("the session's log lacks {want:?}:\n{page}"));
        }
    }
    Ok(())
}

/// The other origin's page (served by python's http.server on another port).
const OTHER_PAGE: &str = r#"<!DOCTYPE html><html><body><pre id="out"></pre><script>
const out = [];
const say = s => { out.push(s); document.getElementById("out").textContent = out.join("\n"); };
(async () => {
  try { const r = await fetch("http://127.0.0.1:8321/"); say("read: " + r.status + " " + (await r.text()).length); }
  catch (e) { say("read: blocked"); }
  try {
    const r = await fetch("http://127.0.0.1:8321/request", { method: "POST", mode: "no-cors",
      headers: { "Content-Type": "text/plain" }, body: '{"do":"dial","number":"2000"}' });
    say("post: sent");
  } catch (e) { say("post: blocked"); }
  await new Promise(done => {
    const es = new EventSource("http://127.0.0.1:8321/events?token=0");
    es.onmessage = () => { say("events: got a message"); es.close(); done(); };
    es.onerror = () => { say("events: refused"); es.close(); done(); };
  });
  say("done");
})();
</script></body></html>"#;
