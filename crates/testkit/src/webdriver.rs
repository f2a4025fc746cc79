//! A real browser for page tests: headless Chromium driven through chromedriver's W3C
//! WebDriver API (clicks and key presses as a person makes them, text read from the page,
//! screenshots). chromedriver runs where the test puts it (for example in an office's network
//! namespace); [`Browser`] talks to it over HTTP.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The key WebDriver sends for Enter, Escape, Backspace.
pub const ENTER: &str = "\u{E007}";
pub const ESCAPE: &str = "\u{E00C}";
pub const BACKSPACE: &str = "\u{E003}";

/// WebDriver's name for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser session.
#[derive(Debug)]
pub struct Browser {
    url: String,
}

fn call(method: &str, url: &str, body: Option<Value>) -> Result<Value, String> {
    let req = ureq::request(method, url).timeout(Duration::from_secs(60));
    let r = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    let v: Value = match r {
        Ok(resp) => resp.into_json().map_err(|e| format!("{url}: {e}"))?,
        Err(ureq::Error::Status(code, resp)) => {
            let text = resp.into_string().unwrap_or_default();
            return Err(format!("{method} {url}: {code} {text}"));
        }
        Err(e) => return Err(format!("{method} {url}: {e}")),
    };
    Ok(v["value"].clone())
}

impl Browser {
    /// A new headless Chromium session from the chromedriver at `driver` (`http://host:port`),
    /// its window `w`×`h`.
    pub fn open(driver: &str, w: u32, h: u32) -> Browser {
        let deadline = Instant::now() + Duration::from_secs(30);
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                         "--disable-dev-shm-usage", format!("--window-size={w},{h}"),
                         "--lang=de-DE", "--font-render-hinting=none"]
            }
        }}});
        loop {
            match call("POST", &format!("{driver}/session"), Some(caps.clone())) {
                Ok(v) => {
                    let id = v["sessionId"].as_str().unwrap_or_default().to_string();
                    assert!(!id.is_empty(), "chromedriver gave no session: {v}");
                    return Browser {
                        url: format!("{driver}/session/{id}"),
                    };
                }
                Err(e) if Instant::now() > deadline => panic!("chromedriver: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(300)),
            }
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        call(method, &format!("{}{path}", self.url), body).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    /// Resize the window's viewport to `w`×`h` CSS pixels (the outer window is made larger
    /// by the browser's own frame).
    pub fn viewport(&self, w: u32, h: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({"width": w, "height": h})),
        );
        let inner = self.script("return [innerWidth, innerHeight];", json!([]));
        let dw = w as i64 - inner[0].as_i64().unwrap_or(w as i64);
        let dh = h as i64 - inner[1].as_i64().unwrap_or(h as i64);
        if dw != 0 || dh != 0 {
            self.cmd(
                "POST",
                "/window/rect",
                Some(json!({"width": w as i64 + dw, "height": h as i64 + dh})),
            );
        }
    }

    /// Run `body` (a function body) with `args`; its return value.
    pub fn script(&self, body: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": body, "args": args})),
        )
    }

    fn element(&self, css: &str) -> Option<String> {
        let r = call(
            "POST",
            &format!("{}/element", self.url),
            Some(json!({"using": "css selector", "value": css})),
        )
        .ok()?;
        r[ELEMENT].as_str().map(str::to_string)
    }

    /// Click the element `css` (as a pointer does: WebDriver scrolls it into view and clicks
    /// its centre; a hidden or covered element is an error).
    pub fn click(&self, css: &str) {
        let e = self
            .element(css)
            .unwrap_or_else(|| panic!("no element {css}"));
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    /// Key presses to whatever has the focus (characters, or [`ENTER`] and the like).
    pub fn keys(&self, text: &str) {
        let mut actions = vec![];
        for c in text.chars() {
            let k = c.to_string();
            actions.push(json!({"type": "keyDown", "value": k}));
            actions.push(json!({"type": "keyUp", "value": k}));
        }
        self.cmd(
            "POST",
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        );
        self.cmd("DELETE", "/actions", None);
    }

    /// The visible text of `css` ("" when it is hidden or missing).
    pub fn text(&self, css: &str) -> String {
        let Some(e) = self.element(css) else {
            return String::new();
        };
        self.cmd("GET", &format!("/element/{e}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Wait until `css`'s visible text contains `want`; the text seen last otherwise (Err).
    pub fn wait_text(&self, css: &str, want: &str, secs: u64) -> Result<String, String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let t = self.text(css);
            if t.contains(want) {
                return Ok(t);
            }
            if Instant::now() > deadline {
                return Err(t);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self, file: &Path) {
        use base64::Engine as _;
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .unwrap();
        std::fs::write(file, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The browser ends with its session; chromedriver with the test's office.
        let _ = call("DELETE", &self.url, None);
    }
}
