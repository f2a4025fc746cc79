//! The README.txt on the ESP: for whoever plugs the stick into a Windows PC.

/// The note, German and English, with the hotline and the signing key's fingerprint (CRLF).
pub fn readme_txt(
    c: &homestick_profile::Customer,
    image_id: &str,
    version: &str,
    key_id: &str,
    user: Option<&homestick_image::manifest::User>,
) -> String {
    // A customer-wide image names no user.
    let stick_of = user
        .map(|u| format!("Stick: {} ({})\n", u.name, u.id))
        .unwrap_or_default();
    let hotline = c.hotline.as_deref().unwrap_or("-");
    let email = c.email.as_deref().unwrap_or("-");
    // No hours given: none shown.
    let hours = c
        .hours
        .as_deref()
        .map(|h| format!(" ({h})"))
        .unwrap_or_default();
    let text = format!(
        "HOMESTICK - {name}\n\
         \n\
         DEUTSCH\n\
         Dies ist ein Home-Office-Stick von {name}. Er startet ein abgesichertes System\n\
         mit dem VPN und dem Telefon Ihres Arbeitgebers - und sonst nichts.\n\
         \n\
         Bitte veraendern Sie nichts auf diesem Stick. Jede Aenderung wird beim Start\n\
         erkannt; der Stick startet dann nicht mehr.\n\
         \n\
         Starten: Stick einstecken, PC neu starten und im Startmenue (oft F12, F11, F8\n\
         oder Esc) den USB-Stick waehlen.\n\
         \n\
         Hilfe: {hotline}{hours}, {email}\n\
         \n\
         ENGLISH\n\
         This is a home-office stick from {name}. It starts a locked-down system with\n\
         your employer's VPN and phone - and nothing else.\n\
         \n\
         Please do not change anything on this stick. Any change is detected at start-up\n\
         and the stick will then refuse to start.\n\
         \n\
         To start: plug in the stick, restart the PC and choose the USB stick in the boot\n\
         menu (often F12, F11, F8 or Esc).\n\
         \n\
         Help: {hotline}{hours}, {email}\n\
         \n\
         {stick_of}Image {image_id}, version {version}\n\
         Signing key (SHA-256 of the public key) / Signaturschluessel:\n\
         {key_id}\n",
        name = c.name,
    );
    // CRLF so that every Windows editor shows the lines.
    text.replace('\n', "\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(hotline: Option<&str>, hours: Option<&str>) -> homestick_profile::Customer {
        homestick_profile::Customer {
            id: "stadt-a".into(),
            name: "Stadt A".into(),
            hotline: hotline.map(str::to_string),
            email: Some("it@stadt-a.example".into()),
            hours: hours.map(str::to_string),
            languages: None,
            logo: None,
        }
    }

    #[test]
    fn both_languages_hotline_and_key_with_crlf() {
        let t = readme_txt(
            &customer(Some("+49 1"), Some("Mo-Fr")),
            "ID",
            "1.0",
            "KEY",
            None,
        );
        for want in [
            "DEUTSCH",
            "ENGLISH",
            "Hilfe: +49 1 (Mo-Fr), it@stadt-a.example",
            "Image ID, version 1.0",
            "KEY\r\n",
        ] {
            assert!(t.contains(want), "{want:?} in {t}");
        }
        assert!(
            !t.replace("\r\n", "").contains('\n'),
            "every line ends in CRLF"
        );
        let t = readme_txt(&customer(None, None), "ID", "1.0", "KEY", None);
        assert!(t.contains("Help: -, it@stadt-a.example"), "{t}");
    }
}
