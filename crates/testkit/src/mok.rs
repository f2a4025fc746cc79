//! The shim path's first start as a person does it: shim's refusal, MokManager's screens, the
//! keys of [`homestick_formats::shim::enrolment`] typed on the serial console (the same steps
//! the first-start guide prints).

use std::time::{Duration, Instant};

use homestick_formats::shim::Step;

use crate::qemu::Qemu;

/// Go through `steps` on `q`'s console: wait for each screen's words (at most `secs` each),
/// then type its keys. Returns what was seen and typed, a line per step; `Err` names the screen
/// that did not come, with the console's last lines.
pub fn enrol(q: &Qemu, steps: &[Step], secs: u64) -> Result<Vec<String>, String> {
    let mut from = 0;
    let mut seen = Vec::new();
    for s in steps {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let at = loop {
            let text = q.screen_text();
            // `from` was a boundary of an earlier, shorter text: step back to one of this text.
            let start = (0..=from.min(text.len()))
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            if let Some(i) = text[start..].find(s.screen) {
                break start + i + s.screen.len();
            }
            if Instant::now() > deadline {
                let tail: String = text
                    .chars()
                    .rev()
                    .take(1500)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                return Err(format!(
                    "no {:?} on the screen after {secs} s; last: {}",
                    s.screen,
                    squeeze(&tail)
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        from = at;
        // The screen is drawn in several writes: let it finish before the first key.
        std::thread::sleep(Duration::from_millis(700));
        for k in &s.keys {
            q.type_bytes(k.terminal_bytes())
                .map_err(|e| format!("typing on the console: {e}"))?;
            std::thread::sleep(Duration::from_millis(400));
        }
        let keys: Vec<&str> = s.keys.iter().map(|k| k.names().1).collect();
        seen.push(format!("saw {:?}, pressed {}", s.screen, keys.join(", ")));
    }
    Ok(seen)
}

/// Runs of white space as one space (a screen's text is padded to its boxes).
pub fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
