//! The shim boot path: which files a base brings, where they go on the stick's ESP, and the
//! one-time enrolment on a PC that trusts only Microsoft's keys — the screens MokManager shows
//! and the keys to press. The first-start guide prints these steps and the QEMU test types
//! them, so what the guide says is what was tested.

/// In a base directory (beside `linuxx64.efi.stub`): Debian's Microsoft-signed shim
/// (`shimx64.efi.signed` of the package shim-signed).
pub const BASE_SHIM: &str = "shimx64.efi";
/// In a base directory: MokManager, signed by Debian (`mmx64.efi.signed` of the package
/// shim-helpers-amd64-signed).
pub const BASE_MOK_MANAGER: &str = "mmx64.efi";

/// On the ESP: the removable-media loader the firmware starts (shim on this path).
pub const ESP_LOADER: &str = "EFI/BOOT/BOOTX64.EFI";
/// On the ESP: shim's second stage, the signed UKI (shim's default loader name).
pub const ESP_SECOND_STAGE: &str = "EFI/BOOT/grubx64.efi";
/// On the ESP: MokManager, which shim starts when the second stage is not trusted.
pub const ESP_MOK_MANAGER: &str = "EFI/BOOT/mmx64.efi";
/// On the ESP: the provider's Secure Boot certificate (DER) for "Enroll key from disk".
pub const ESP_CERT: &str = "homestick.cer";
/// The ESP's volume label, the name MokManager's file picker shows for the stick.
pub const ESP_LABEL: &str = "HOMESTICK";

/// The boot path an image's ESP files make (its manifest lists them, `verify` checks each):
/// shim when the UKI is shim's second stage, db when the UKI is the loader, `None` when the
/// image has no boot program (a base without a kernel).
pub fn boot_path_of<'a>(
    esp_files: impl IntoIterator<Item = &'a str>,
) -> Option<crate::base::BootPath> {
    let mut loader = false;
    for f in esp_files {
        if f.eq_ignore_ascii_case(ESP_SECOND_STAGE) {
            return Some(crate::base::BootPath::Shim);
        }
        loader |= f.eq_ignore_ascii_case(ESP_LOADER);
    }
    loader.then_some(crate::base::BootPath::Db)
}

/// One line on what starts an image with the ESP files `esp_files`, for `verify` and `inspect`.
pub fn describe_boot_path<'a>(esp_files: impl IntoIterator<Item = &'a str> + Clone) -> String {
    let has = |p: &str| {
        esp_files
            .clone()
            .into_iter()
            .any(|f| f.eq_ignore_ascii_case(p))
    };
    match boot_path_of(esp_files.clone()) {
        Some(crate::base::BootPath::Shim) if has(ESP_MOK_MANAGER) => format!(
            "shim: {ESP_LOADER} (shim) starts {ESP_SECOND_STAGE} (the UKI) once the certificate {ESP_CERT} is enrolled with {ESP_MOK_MANAGER} (MokManager)"
        ),
        Some(crate::base::BootPath::Shim) => format!(
            "shim: {ESP_LOADER} (the provider's own shim) starts {ESP_SECOND_STAGE} (the UKI)"
        ),
        Some(crate::base::BootPath::Db) => {
            format!("db: {ESP_LOADER} is the UKI; the PC's db must trust its signer")
        }
        None => "none: no boot program (a base without a kernel)".to_string(),
    }
}

/// A key the person presses (the test sends the same over the serial console).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Enter.
    Enter,
    /// Arrow down.
    Down,
    /// Any key (the test sends a space).
    Any,
}

impl Key {
    /// The key's name in the guide, (German, English).
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            Key::Enter => ("Eingabetaste (Enter)", "Enter"),
            Key::Down => ("Pfeil nach unten (↓)", "arrow down (↓)"),
            Key::Any => ("eine beliebige Taste", "any key"),
        }
    }

    /// The bytes a serial terminal sends for the key.
    pub fn terminal_bytes(self) -> &'static [u8] {
        match self {
            Key::Enter => b"\r",
            Key::Down => b"\x1b[B",
            Key::Any => b" ",
        }
    }
}

/// One screen of the enrolment and what to do there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Words the screen shows, as shim and MokManager print them (English only).
    pub screen: &'static str,
    /// What the screen is, (German, English).
    pub what: (&'static str, &'static str),
    /// What to do, (German, English).
    pub todo: (String, String),
    /// The keys, in order.
    pub keys: Vec<Key>,
    /// Whether the screen waits only a few seconds (MokManager's 10-second countdown).
    pub hurry: bool,
}

/// The root of the stick's ESP as MokManager lists it on the shim path: directories with a
/// trailing `/`, in the FAT's (sorted) order.
pub fn esp_root(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["EFI/", "homestick/", ESP_CERT]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

fn step(
    screen: &'static str,
    what: (&'static str, &'static str),
    todo: (&str, &str),
    keys: Vec<Key>,
) -> Step {
    Step {
        screen,
        what,
        todo: (todo.0.to_string(), todo.1.to_string()),
        keys,
        hurry: false,
    }
}

/// "select `item` with ↓, then Enter": the keys for the `at`-th entry of a list.
fn select(at: usize) -> Vec<Key> {
    let mut k = vec![Key::Down; at];
    k.push(Key::Enter);
    k
}

/// The first start on a PC that does not trust the provider's key yet: from shim's refusal
/// through MokManager's "Enroll key from disk" to the restart. `root`: the ESP's root as
/// MokManager lists it ([`esp_root`]); the stick's volume is the first one listed (on a PC
/// with more disks the guide says to pick [`ESP_LABEL`]).
pub fn enrolment(root: &[String]) -> Vec<Step> {
    let cert_at = root.iter().position(|e| e == ESP_CERT).unwrap_or(0);
    let mut countdown = step(
        "Press any key to perform MOK management",
        ("Blauer Bildschirm „Shim UEFI key management“ mit Countdown", "Blue screen \"Shim UEFI key management\" with a countdown"),
        ("Innerhalb von 10 Sekunden eine Taste drücken. Verpasst? Der PC startet neu und zeigt wieder die Meldung: noch einmal versuchen.", "Press a key within 10 seconds. Missed it? The PC restarts and shows the message again: try once more."),
        vec![Key::Any],
    );
    countdown.hurry = true;
    vec![
        step(
            "Verification failed: (0x1A) Security Violation",
            ("Meldung „ERROR – Verification failed: (0x1A) Security Violation“", "Message \"ERROR – Verification failed: (0x1A) Security Violation\""),
            ("Das ist beim ersten Start richtig: der PC kennt den Schlüssel Ihres Arbeitgebers noch nicht. Mit Enter bestätigen (OK).", "This is expected on the first start: the PC does not know your employer's key yet. Confirm with Enter (OK)."),
            vec![Key::Enter],
        ),
        countdown,
        step(
            "Enroll key from disk",
            ("Menü „Perform MOK management“", "Menu \"Perform MOK management\""),
            ("„Enroll key from disk“ wählen (einmal ↓), Enter.", "Choose \"Enroll key from disk\" (↓ once), Enter."),
            select(1),
        ),
        step(
            "Select Key",
            ("„Select Key“ mit einer Liste der Laufwerke", "\"Select Key\" with a list of drives"),
            (&format!("Den Stick „{ESP_LABEL}“ wählen (er steht meist oben), Enter."), &format!("Choose the stick \"{ESP_LABEL}\" (usually at the top), Enter.")),
            vec![Key::Enter],
        ),
        step(
            ESP_CERT,
            ("Liste der Dateien auf dem Stick", "List of the files on the stick"),
            (&format!("Die Datei „{ESP_CERT}“ wählen (↓), Enter."), &format!("Choose the file \"{ESP_CERT}\" (↓), Enter.")),
            select(cert_at),
        ),
        step(
            "View key 0",
            ("„[Enroll MOK]“ mit „View key 0“ und „Continue“", "\"[Enroll MOK]\" with \"View key 0\" and \"Continue\""),
            ("„Continue“ wählen (einmal ↓), Enter.", "Choose \"Continue\" (↓ once), Enter."),
            select(1),
        ),
        step(
            "Enroll the key(s)?",
            ("Frage „Enroll the key(s)?“ mit „No“ und „Yes“", "Question \"Enroll the key(s)?\" with \"No\" and \"Yes\""),
            ("„Yes“ wählen (einmal ↓), Enter.", "Choose \"Yes\" (↓ once), Enter."),
            select(1),
        ),
        step(
            "Reboot",
            ("Menü „Perform MOK management“, jetzt mit „Reboot“ oben", "Menu \"Perform MOK management\", now with \"Reboot\" at the top"),
            ("„Reboot“ ist gewählt: Enter. Der PC startet neu, diesmal bis zur Prüfung des Sticks.", "\"Reboot\" is selected: Enter. The PC restarts, this time up to the stick's check."),
            vec![Key::Enter],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_is_picked_where_the_list_shows_it() {
        let root = esp_root(&[]);
        assert_eq!(root, ["EFI/", "homestick.cer", "homestick/"]);
        let steps = enrolment(&root);
        let pick = steps.iter().find(|s| s.screen == ESP_CERT).expect("pick");
        assert_eq!(pick.keys, [Key::Down, Key::Enter]);
        let more = esp_root(&["README.TXT"]);
        let steps = enrolment(&more);
        let pick = steps.iter().find(|s| s.screen == ESP_CERT).expect("pick");
        assert_eq!(pick.keys, [Key::Down, Key::Down, Key::Enter], "{more:?}");
    }

    #[test]
    fn the_boot_path_follows_from_the_files() {
        use crate::base::BootPath;
        let shim = [ESP_LOADER, ESP_SECOND_STAGE, ESP_MOK_MANAGER, ESP_CERT];
        assert_eq!(boot_path_of(shim), Some(BootPath::Shim));
        assert!(describe_boot_path(shim).contains("MokManager"));
        let own = [ESP_LOADER, ESP_SECOND_STAGE];
        assert!(describe_boot_path(own).contains("provider's own shim"));
        assert_eq!(
            boot_path_of([ESP_LOADER, "homestick/README.txt"]),
            Some(BootPath::Db)
        );
        assert_eq!(boot_path_of(["homestick/README.txt"]), None);
    }

    #[test]
    fn every_step_has_words_in_both_languages_and_keys() {
        for s in enrolment(&esp_root(&[])) {
            assert!(!s.keys.is_empty(), "{s:?}");
            assert!(!s.what.0.is_empty() && !s.what.1.is_empty(), "{s:?}");
            assert!(!s.todo.0.is_empty() && !s.todo.1.is_empty(), "{s:?}");
            assert_ne!(s.todo.0, s.todo.1, "{s:?}");
        }
    }
}
