//! The first-start guide for a customer's employees (`homestick guide`): how to start a PC
//! from the stick, the one-time enrolment of the provider's key with the screens and keys of
//! [`homestick_formats::shim::enrolment`] (the steps the QEMU test types), what a refusal
//! looks like, and the hotline. German and English, printable on A4. Every value from the
//! profile is HTML-escaped.

use homestick_formats::html::escape;
use homestick_formats::profile::Customer;
use homestick_formats::shim::{self, Step};

/// Boot-menu keys of common PC makers: (maker, key at power-on).
pub const BOOT_MENU_KEYS: &[(&str, &str)] = &[
    ("Acer", "F12"),
    ("ASUS", "F8 / Esc"),
    ("Dell", "F12"),
    ("Fujitsu", "F12"),
    ("HP", "F9 (oder/or Esc, dann/then F9)"),
    ("Lenovo", "F12 (Fn+F12) / Novo-Taste / Novo button"),
    ("Medion", "F10"),
    ("MSI", "F11"),
    (
        "Microsoft Surface",
        "Lauter-Taste / volume down + Ein / power",
    ),
    ("Samsung", "F10 / Esc"),
];

/// The guide's page for `c`.
pub fn guide_html(c: &Customer) -> String {
    let name = escape(&c.name);
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"de\"><head><meta charset=\"utf-8\">\
         <title>Erster Start / First start — {name}</title>\n<style>{CSS}</style></head><body>\n\
         <h1>Erster Start mit dem Home-Office-Stick<br><span class=\"en\">First start with the home-office stick</span></h1>\n\
         <p class=\"who\">{name}{help}</p>\n",
        help = c
            .hotline
            .as_deref()
            .map(|h| format!(" — Hilfe / Help: {}", escape(h)))
            // No hotline in the profile: the heading names the customer alone.
            .unwrap_or_default()
    );
    html.push_str(&start_section());
    html.push_str(&enrol_section(&shim::enrolment(&shim::esp_root(&[]))));
    html.push_str(&after_section());
    html.push_str(&refusal_section());
    html.push_str(&hotline_section(c));
    html.push_str("</body></html>\n");
    html
}

const CSS: &str = "@page{size:A4;margin:15mm}\
body{font-family:'DejaVu Sans',Arial,sans-serif;font-size:11pt;line-height:1.35;color:#000;max-width:180mm;margin:auto}\
h1{font-size:18pt;margin:0 0 4mm} h2{font-size:14pt;margin:6mm 0 2mm;border-bottom:1px solid #000}\
.en{color:#333;font-style:italic} .who{font-size:13pt;font-weight:bold}\
table{border-collapse:collapse;width:100%} td,th{border:1px solid #000;padding:1.5mm;vertical-align:top;text-align:left}\
code{font-family:'DejaVu Sans Mono',monospace;font-weight:bold}\
section{page-break-inside:avoid} .break{page-break-before:always}";

/// "(German) / (English)" in one cell.
fn both(de: &str, en: &str) -> String {
    format!("{de}<br><span class=\"en\">{en}</span>")
}

fn start_section() -> String {
    let mut rows = String::new();
    for (maker, key) in BOOT_MENU_KEYS {
        rows.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td></tr>",
            escape(maker),
            escape(key)
        ));
    }
    format!(
        "<section><h2>{}</h2>\n<ol>\n<li>{}</li>\n<li>{}</li>\n<li>{}</li>\n<li>{}</li>\n</ol>\n\
         <table><tr><th>{}</th><th>{}</th></tr>{rows}</table></section>\n",
        both("1. Vom Stick starten", "1. Start from the stick"),
        both(
            "Den PC ganz ausschalten. Windows schaltet mit „Herunterfahren“ oft nur in den Schnellstart: beim Klick auf „Herunterfahren“ die Umschalttaste (Shift) gedrückt halten.",
            "Switch the PC off completely. Windows' \"Shut down\" often only enters Fast Startup: hold Shift while you click \"Shut down\".",
        ),
        both(
            "Den Stick an einen USB-Anschluss direkt am PC stecken, dann einschalten und sofort mehrmals die Taste für das Startmenü drücken (Tabelle).",
            "Plug the stick into a USB port on the PC itself, switch on and press the boot-menu key (table) several times right away.",
        ),
        both(
            "Im Startmenü den USB-Stick wählen (oft „UEFI: USB …“ oder „EFI USB Device“), Enter.",
            "In the boot menu choose the USB stick (often \"UEFI: USB …\" or \"EFI USB Device\"), Enter.",
        ),
        both(
            "Ohne Taste geht es aus Windows: Einstellungen → System → Wiederherstellung → Erweiterter Start → „Jetzt neu starten“ → „Ein Gerät verwenden“ → den USB-Stick wählen.",
            "Without a key, from Windows: Settings → System → Recovery → Advanced startup → \"Restart now\" → \"Use a device\" → choose the USB stick.",
        ),
        both("Hersteller", "Maker"),
        both("Taste beim Einschalten", "Key at power-on"),
    )
}

fn enrol_section(steps: &[Step]) -> String {
    let mut rows = String::new();
    for (i, s) in steps.iter().enumerate() {
        let keys: Vec<&str> = s.keys.iter().map(|k| k.names().0).collect();
        let keys_en: Vec<&str> = s.keys.iter().map(|k| k.names().1).collect();
        rows.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code><br>{}</td><td>{}</td><td>{}</td></tr>\n",
            i + 1,
            escape(s.screen),
            both(&escape(s.what.0), &escape(s.what.1)),
            both(&escape(&s.todo.0), &escape(&s.todo.1)),
            both(&escape(&keys.join(", ")), &escape(&keys_en.join(", "))),
        ));
    }
    format!(
        "<section class=\"break\"><h2>{}</h2>\n<p>{}</p>\n\
         <table><tr><th>#</th><th>{}</th><th>{}</th><th>{}</th></tr>\n{rows}</table></section>\n",
        both(
            "2. Nur beim ersten Start an diesem PC: den Schlüssel eintragen",
            "2. Only at the first start on this PC: enrol the key",
        ),
        both(
            "Der PC kennt den Schlüssel Ihres Arbeitgebers noch nicht. Ein blaues Programm (MokManager, nur auf Englisch) trägt ihn einmal vom Stick ein; danach startet der Stick an diesem PC ohne diese Schritte. Windows bleibt davon unberührt.",
            "The PC does not know your employer's key yet. A blue program (MokManager, English only) enrols it once from the stick; after that the stick starts on this PC without these steps. Windows is not affected.",
        ),
        both("Der Bildschirm zeigt", "The screen shows"),
        both("Was Sie tun", "What you do"),
        both("Tasten", "Keys"),
    )
}

fn after_section() -> String {
    format!(
        "<section><h2>{}</h2><p>{}</p></section>\n",
        both("3. Jeder weitere Start", "3. Every later start"),
        both(
            "Der Stick prüft sich selbst (Zeile „homestick: image verified“) und zeigt dann die Anmeldung zu Ihrem Arbeitsplatz. Zeigt er eine rote Meldung, ist der Stick verändert oder gesperrt: nicht weiter verwenden, die Hotline anrufen.",
            "The stick checks itself (line \"homestick: image verified\") and then shows your workplace. If it shows a red message, the stick was changed or blocked: stop using it and call the hotline.",
        )
    )
}

fn refusal_section() -> String {
    let items = [
        both(
            "<code>Access Denied</code> oder <code>Secure Boot Violation</code> vor jedem blauen Bildschirm: der PC lässt nur Windows starten (oft bei „Secured-core“-PCs). In der Firmware-Einstellung (F2 / Entf beim Einschalten) unter „Security → Secure Boot“ die Option „Microsoft 3rd Party UEFI CA“ (auch „Allow Microsoft 3rd Party UEFI CA“ oder „Microsoft &amp; 3rd party CA“) einschalten. Secure Boot selbst bleibt an.",
            "<code>Access Denied</code> or <code>Secure Boot Violation</code> before any blue screen: the PC starts only Windows (common on Secured-core PCs). In the firmware setup (F2 / Del at power-on), under \"Security → Secure Boot\", switch on \"Microsoft 3rd Party UEFI CA\" (also \"Allow Microsoft 3rd Party UEFI CA\" or \"Microsoft &amp; 3rd party CA\"). Keep Secure Boot itself on.",
        ),
        both(
            "<code>Verification failed: (0x1A) Security Violation</code> auch nach dem Eintragen: der Stick ist nicht der Ihres Arbeitgebers oder verändert. Nicht weiter verwenden.",
            "<code>Verification failed: (0x1A) Security Violation</code> even after the enrolment: the stick is not your employer's or was changed. Stop using it.",
        ),
        both(
            "„Secure Boot ist aus“: der Stick prüft sich trotzdem, aber der PC schützt den Start nicht. Bitte die Hotline anrufen.",
            "\"Secure Boot is off\": the stick still checks itself, but the PC does not protect the start. Please call the hotline.",
        ),
        both(
            "Der Countdown von MokManager ist abgelaufen: den PC neu starten und die Schritte noch einmal machen.",
            "MokManager's countdown ran out: restart the PC and do the steps again.",
        ),
    ];
    format!(
        "<section><h2>{}</h2><ul>{}</ul></section>\n",
        both(
            "4. Wenn der PC den Stick ablehnt",
            "4. If the PC refuses the stick"
        ),
        items
            .iter()
            .map(|i| format!("<li>{i}</li>"))
            .collect::<String>()
    )
}

fn hotline_section(c: &Customer) -> String {
    let mut lines = Vec::new();
    if let Some(h) = &c.hotline {
        lines.push(format!("<b>{}</b>", escape(h)));
    }
    if let Some(e) = &c.email {
        lines.push(escape(e));
    }
    if let Some(h) = &c.hours {
        lines.push(escape(h));
    }
    if lines.is_empty() {
        lines.push(both("Ihre IT-Abteilung", "Your IT department"));
    }
    format!(
        "<section><h2>{}</h2><p>{}<br>{}</p></section>\n",
        both("Hilfe", "Help"),
        escape(&c.name),
        lines.join("<br>")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(name: &str) -> Customer {
        Customer {
            id: "x".into(),
            name: name.into(),
            hotline: Some("+49 1 <2>".into()),
            email: None,
            hours: None,
            languages: None,
            logo: None,
        }
    }

    #[test]
    fn the_guide_carries_every_enrolment_step_and_escapes_the_profile() {
        let html = guide_html(&customer("A&B <script>"));
        assert!(html.contains("A&amp;B &lt;script&gt;"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("+49 1 &lt;2&gt;"));
        for s in shim::enrolment(&shim::esp_root(&[])) {
            assert!(html.contains(&escape(s.screen)), "{}", s.screen);
            assert!(html.contains(&escape(&s.todo.0)), "{}", s.todo.0);
            assert!(html.contains(&escape(&s.todo.1)), "{}", s.todo.1);
        }
        assert!(html.contains("@page{size:A4"));
    }
}
